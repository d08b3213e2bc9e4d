"""The hybrid combiner and the rate baselines are fitted on earlier windows' out-of-sample rows
only; the guard compares a candidate with what serves on the window neither has seen."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lsat.adapters.lifecycle.hybrid_features import RATE_FEATURES, hybrid_columns
from lsat.adapters.lifecycle.publication import AdapterRef, ServingSet
from lsat.adapters.lifecycle.registry import RegistryStore, open_registry
from lsat.adapters.model.hybrid import HybridCombiner, fit_combiner, fit_hybrid
from lsat.adapters.trainer.baselines import RateBaselines, ServedHybrid
from lsat.adapters.trainer.combiner import HYBRID_FIT_METRIC, CombinerFitter
from lsat.adapters.trainer.helpers import ServingNow
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.oos_rows import EarlierRows, WindowRowsLog
from lsat.adapters.trainer.window_evaluation import Scored, WindowEvaluator
from lsat.core.evaluation import auc
from lsat.data.types import CollaborativeFeatures, Interaction, Sample
from lsat.stream.store import IngestItem, SampleStore

NOTHING = ServingNow(None, None, None)
N = 200


def window(window_id: int, seed: int) -> tuple[list[Sample], dict[str, np.ndarray]]:
    """Samples whose item like-rate predicts the label, and a weakly informative "long" score."""
    rng = np.random.default_rng(seed)
    item_rate = rng.uniform(0.1, 0.9, N)
    labels = (rng.uniform(size=N) < item_rate).astype(int)
    samples = []
    for k in range(N):
        likes = round(float(item_rate[k]) * 40)
        features = CollaborativeFeatures(5, 10, likes, 40, 500, 1000)
        history = tuple(int(x) for x in rng.integers(0, 2, 10))
        samples.append(
            Sample(f"w{window_id}-{k}", f"u{k % 9}", f"i{k}", k, int(labels[k]), ("a",) * 10,
                   history, features)
        )  # fmt: skip
    long = 1 / (1 + np.exp(-(labels - 0.5) * 0.6 - rng.normal(size=N)))
    return samples, {"long": long, "short": long, "combined": long, "served": long}


def record(registry: RegistryStore, window_id: int, seed: int, **override: np.ndarray) -> None:
    samples, probs = window(window_id, seed)
    WindowRowsLog(registry).record(window_id, samples, {**probs, **override}, {})


@pytest.fixture
def registry(sqlite_url: str):  # type: ignore[no-untyped-def]
    with open_registry(sqlite_url) as store:
        yield store


def test_fit_rows_are_the_windows_before_never_the_window_itself(registry: RegistryStore) -> None:
    for w in (1, 2, 3, 4, 5):
        record(registry, w, seed=w)
    fitter = CombinerFitter(EarlierRows(registry, windows=2), margin=0.01)
    rows = fitter.fit_rows(5)
    assert sorted(set(rows.windows)) == ["3", "4"]  # the newest 2 windows before 5
    own = {f"w5-{k}" for k in range(N)}
    assert own.isdisjoint(rows.event_ids) and len(rows) == 2 * N


def test_a_window_s_own_samples_never_enter_its_combiner(registry: RegistryStore) -> None:
    """Window 4's rows carry a long score equal to the label (what an adapter scoring its own
    training samples would look like); earlier windows' long score is noise. A combiner fitted
    on window 4's rows would lean on it; the one chosen in window 4's job must not: its features
    are chosen and guarded without window 4 (the refit after the guard keeps them)."""
    rng = np.random.default_rng(9)
    for w in (1, 2, 3):
        record(registry, w, seed=w, long=rng.uniform(0.2, 0.8, N), short=rng.uniform(0.2, 0.8, N))
    samples, _ = window(4, seed=4)
    leaked = np.array([0.999 if s.label else 0.001 for s in samples])
    record(registry, 4, seed=4, long=leaked, short=leaked)
    fitter = CombinerFitter(EarlierRows(registry), margin=1.0)
    probs = {"long": leaked, "short": leaked}
    choice = fitter.choose(4, samples, probs, NOTHING, served_auc=None)
    assert choice.combiner is not None
    fit = choice.metrics[HYBRID_FIT_METRIC]
    assert fit["guarded"]["windows"] == ["1", "2", "3"]
    assert choice.combiner.note.startswith("rates only"), choice.combiner.note
    assert set(choice.combiner.features) <= set(RATE_FEATURES)
    assert fit["windows"] == ["1", "2", "3", "4"]  # refitted, on the rates only
    # the same fit with window 4 included would have used the leak:
    rows = EarlierRows(registry).scored(4, upto=True)
    leaky = fit_hybrid(
        rows.columns, rows.labels, base=["logit_item_rate"], extra=["logit_long", "logit_short"]
    )
    assert "logit_long" in leaky.features


def test_guard_keeps_the_previous_combiner_when_the_candidate_is_worse(
    registry: RegistryStore,
) -> None:
    for w in (1, 2, 3):
        record(registry, w, seed=w)
    samples, probs = window(4, seed=4)
    previous = HybridCombiner(("logit_item_rate",), (1.0,), 0.0, (0.0,), (1.0,), 1.0, "prev")
    short = AdapterRef("short", 3, "/s", "b" * 64)
    serving = ServingSet(None, short, None, 0.0, None, 3, 1.0, hybrid=previous)
    now = ServingNow(None, None, serving)
    fitter = CombinerFitter(EarlierRows(registry), margin=0.01)
    kept = fitter.choose(4, samples, probs, now, served_auc=0.99)
    assert kept.combiner == previous and kept.reason.startswith("previous combiner kept")
    assert kept.metrics["hybrid"] == previous.to_dict()
    replaced = fitter.choose(4, samples, probs, now, served_auc=0.5)
    assert replaced.combiner is not None and replaced.combiner != previous
    fit = replaced.metrics[HYBRID_FIT_METRIC]
    labels = np.array([s.label for s in samples])
    assert fit["checked_on"] == "4" and fit["rows"] == 3 * N
    columns = hybrid_columns(samples, probs)
    assert fit["auc"] == pytest.approx(auc(labels, replaced.combiner.predict_proba(columns)))


def test_too_few_rows_means_no_combiner(registry: RegistryStore) -> None:
    samples, probs = window(1, seed=1)
    choice = CombinerFitter(EarlierRows(registry), margin=0.01).choose(
        1, samples, probs, NOTHING, served_auc=0.6
    )
    assert choice.combiner is None and "0 out-of-sample rows" in choice.reason
    assert choice.metrics == {}


def test_baselines_and_the_served_hybrid_in_a_window_evaluation(registry: RegistryStore) -> None:
    for w in (1, 2):
        record(registry, w, seed=w)
    samples, probs = window(3, seed=3)
    labels = np.array([s.label for s in samples])
    combiner = HybridCombiner(("logit_item_rate",), (1.0,), 0.0, (0.0,), (1.0,), 1.0)
    serving = ServingSet(None, AdapterRef("short", 1, "/s", "b" * 64), None, 0.0, None, 2, 1.0,
                         hybrid=combiner)  # fmt: skip
    adapters = lambda w, s, now, earlier: {  # noqa: E731
        "short": Scored(probs["short"]),
        "combined": Scored(probs["combined"]),
    }
    metrics = TrainerMetrics()
    rates = RateBaselines(EarlierRows(registry), min_rows=100)
    evaluator = WindowEvaluator(
        registry, metrics, [adapters, rates, ServedHybrid()], log=WindowRowsLog(registry)
    )
    result = evaluator.evaluate(3, samples, ServingNow(None, None, serving))
    names = {"short", "combined", "history_rate", "item_rate", "user_rate", "rate_stack"}
    assert names | {"baseline", "hybrid", "served"} <= set(result.metrics)
    assert result.metrics["baseline"] == result.metrics["rate_stack"]
    assert result.metrics["served"] == result.metrics["hybrid"]
    assert rates.last_stack is not None and "logit_item_rate" in rates.last_stack.features
    assert result.metrics["item_rate"]["auc"] == pytest.approx(
        auc(labels, [s.collaborative.item_rate() for s in samples])
    )
    stored = registry.window_scores()[-1]
    assert stored.window_id == "3" and {"p_short", "p_hybrid", "p_served"} <= set(stored.columns)
    assert stored.metrics["hybrid"]["auc"] == pytest.approx(result.metrics["hybrid"]["auc"])
    text = metrics.render().decode()
    for name in ("baseline", "hybrid", "served", "rate_stack"):
        assert f'lsat_window_auc{{model="{name}"}}' in text
    # next window without a serving hybrid: its gauge goes, the others stay
    evaluator.evaluate(4, samples, NOTHING)
    text = metrics.render().decode()
    assert 'lsat_window_auc{model="hybrid"}' not in text
    assert 'lsat_window_auc{model="served"}' in text and "lsat_window_id 4.0" in text


def test_without_collaborative_counts_the_baseline_is_the_history_rate(
    registry: RegistryStore,
) -> None:
    samples = [Sample(str(k), "u", "i", k, k % 2, ("a", "b"), (k % 2, k % 2)) for k in range(20)]
    out = RateBaselines(EarlierRows(registry))(1, samples, NOTHING, {})
    assert set(out) == {"history_rate", "baseline"}
    assert np.allclose(out["baseline"].probs, [0.75 if k % 2 else 0.25 for k in range(20)])


def store_windows(url: str, windows: dict[int, int]) -> SampleStore:
    """A sample store holding ``window(w, seed=w)``'s samples in each closed window ``w`` (the
    rows a long adapter's bootstrap trained on: stored with rate features, never scored)."""
    store = SampleStore(url)
    for w, seed in windows.items():
        samples, _ = window(w, seed)
        items = [
            IngestItem(Interaction(s.user_id, s.item_id, w * N + k, s.label, event_id=s.event_id),
                       replace(s, timestamp=w * N + k), window_id=w)
            for k, s in enumerate(samples)
        ]  # fmt: skip
        store.ingest_many(items)
        store.close_window(w, "full")
    return store


def test_too_few_scored_rows_fit_a_rates_only_combiner_on_stored_windows(
    registry: RegistryStore, sqlite_url: str
) -> None:
    """Windows 1-2 (the long bootstrap's) were never scored; window 3 was, on 50 rows (fewer
    than min_rows). Window 4's candidate is fitted on the rates of 1, 2 and 3 (the scored rows'
    LLM columns dropped), never on window 4's own samples."""
    store = store_windows(sqlite_url, {1: 1, 2: 2})
    samples3, probs3 = window(3, seed=3)
    log = WindowRowsLog(registry)
    log.record(3, samples3[:50], {k: v[:50] for k, v in probs3.items()}, {})
    fitter = CombinerFitter(EarlierRows(registry, store), margin=0.01, min_rows=100)
    assert len(fitter.fit_rows(4)) == 50
    samples, probs = window(4, seed=4)
    choice = fitter.choose(4, samples, probs, NOTHING, served_auc=0.5)
    assert choice.combiner is not None, choice.reason
    assert set(choice.combiner.features) <= set(RATE_FEATURES)
    assert "logit_item_rate" in choice.combiner.features
    assert choice.combiner.note.startswith("rates only: 450 rows of windows 1..3")
    fit = choice.metrics[HYBRID_FIT_METRIC]
    assert fit["windows"] == ["1", "2", "3"] and fit["rows"] == 2 * N + 50
    assert fit["checked_on"] == "4"
    # exactly the rate stack of those rows: no sample of window 4 in the fit
    rows = EarlierRows(registry, store).rates(4)
    assert set(rows.event_ids).isdisjoint(s.event_id for s in samples)
    again = fit_combiner(rows.columns, rows.labels, list(choice.combiner.features))
    assert again.weights == choice.combiner.weights
    store.close()


@pytest.mark.parametrize("llm", ["informative", "noise"])
def test_with_enough_scored_rows_the_llm_decides_which_rows(
    registry: RegistryStore, sqlite_url: str, llm: str
) -> None:
    """Scored windows 2-3 (250 rows) and window 1 stored only. LLM logits that raise the
    out-of-fold AUC: the hybrid is fitted on the 250 scored rows. Noise logits: they are left
    out and the rates are fitted on all 450 rows (the rate stack's rows)."""
    store = store_windows(sqlite_url, {1: 1})
    rng = np.random.default_rng(5)

    def scored(w: int) -> tuple[list[Sample], dict[str, np.ndarray]]:
        samples_w, probs_w = window(w, seed=w)
        labels = np.array([s.label for s in samples_w])
        signal = (labels - 0.5) * 6 if llm == "informative" else 0.0
        p = 1 / (1 + np.exp(-(signal + rng.normal(size=N))))
        return samples_w, {**probs_w, "long": p, "short": p}

    for w, n in ((2, N), (3, 50)):
        samples_w, probs_w = scored(w)
        WindowRowsLog(registry).record(w, samples_w[:n], {k: v[:n] for k, v in probs_w.items()}, {})
    fitter = CombinerFitter(EarlierRows(registry, store), margin=1.0, min_rows=100)
    samples, probs = scored(4)
    choice = fitter.choose(4, samples, probs, NOTHING, served_auc=0.5)
    assert choice.combiner is not None, choice.reason
    fit = choice.metrics[HYBRID_FIT_METRIC]
    if llm == "informative":
        assert "logit_long" in choice.combiner.features or "logit_short" in choice.combiner.features
        assert fit["windows"] == ["2", "3"] and fit["rows"] == N + 50
        # checked on window 4 next to the rates-only fit on every row, and better there
        (llm_auc, rates_auc) = fit["candidates"].values()
        assert llm_auc == fit["auc"] > rates_auc
    else:
        assert set(choice.combiner.features) <= set(RATE_FEATURES)
        assert fit["windows"] == ["1", "2", "3"] and fit["rows"] == 2 * N + 50
        assert "250 scored rows, rates only" in choice.combiner.note
    store.close()


def test_a_combiner_kept_from_the_long_version_keeps_its_fit_record(
    registry: RegistryStore,
) -> None:
    """Before the first short version, the serving combiner is the long version's; a window
    whose candidate is refused carries it on with the long version's ``hybrid_fit``."""
    for w in (1, 2, 3):
        record(registry, w, seed=w)
    previous = HybridCombiner(("logit_item_rate",), (1.0,), 0.0, (0.0,), (1.0,), 1.0, "long's")
    fit = {"windows": ["1"], "rows": 200, "note": "long's"}
    long = registry.register(
        "long", path="/l", sha256="a" * 64,
        metrics={"hybrid": previous.to_dict(), HYBRID_FIT_METRIC: fit},
    )  # fmt: skip
    serving = ServingSet(AdapterRef.of(long), None, None, 1.0, None, None, 1.0, hybrid=previous)
    samples, probs = window(4, seed=4)
    kept = CombinerFitter(EarlierRows(registry), margin=0.01).choose(
        4, samples, probs, ServingNow(long, None, serving), served_auc=0.99
    )
    assert kept.combiner == previous and kept.metrics[HYBRID_FIT_METRIC] == fit


def test_an_accepted_combiner_is_refitted_up_to_its_window_like_the_next_baseline(
    registry: RegistryStore, sqlite_url: str
) -> None:
    """Window 3's job checks a rates-only candidate fitted on windows 1-2 (stored, never
    scored) on window 3, then publishes it refitted on windows 1-3: exactly the rate stack the
    baseline of window 4 is fitted on, so the served score is not a window behind it."""
    store = store_windows(sqlite_url, {1: 1, 2: 2})
    samples3, probs3 = window(3, seed=3)
    WindowRowsLog(registry).record(3, samples3, probs3, {})  # the evaluation logs it first
    rows = EarlierRows(registry, store)
    choice = CombinerFitter(rows, margin=1.0).choose(3, samples3, probs3, NOTHING, 0.5)
    assert choice.combiner is not None, choice.reason
    fit = choice.metrics[HYBRID_FIT_METRIC]
    assert fit["guarded"] == {"windows": ["1", "2"], "rows": 2 * N}
    assert fit["windows"] == ["1", "2", "3"] and fit["rows"] == 3 * N
    guarded = fit_combiner(
        rows.rates(3).columns, rows.rates(3).labels, list(choice.combiner.features)
    )
    labels3 = np.array([s.label for s in samples3])
    assert fit["auc"] == pytest.approx(
        auc(labels3, guarded.predict_proba(hybrid_columns(samples3, probs3)))
    )  # the guard's AUC is the candidate's, on rows it never saw
    baselines = RateBaselines(rows, min_rows=100)
    samples4, _ = window(4, seed=4)
    baselines(4, samples4, NOTHING, {})
    assert baselines.last_stack is not None
    assert choice.combiner.weights == baselines.last_stack.weights
    assert choice.combiner.intercept == baselines.last_stack.intercept
    store.close()


def test_an_llm_candidate_worse_on_the_window_than_the_rates_gives_way_to_them(
    registry: RegistryStore, sqlite_url: str
) -> None:
    """The LLM logits helped out of fold on the scored rows (informative there) but carry
    nothing on window 4: the rates-only fit on every row is checked next to it and wins."""
    store = store_windows(sqlite_url, {1: 1})
    rng = np.random.default_rng(5)
    for w in (2, 3):
        samples_w, probs_w = window(w, seed=w)
        labels = np.array([s.label for s in samples_w])
        p = 1 / (1 + np.exp(-((labels - 0.5) * 6 + rng.normal(size=N))))
        WindowRowsLog(registry).record(w, samples_w, {**probs_w, "long": p, "short": p}, {})
    samples, probs = window(4, seed=4)
    noise = rng.uniform(0.2, 0.8, N)
    probs = {**probs, "long": noise, "short": noise}
    choice = CombinerFitter(EarlierRows(registry, store), margin=1.0).choose(
        4, samples, probs, NOTHING, served_auc=0.5
    )
    assert choice.combiner is not None and set(choice.combiner.features) <= set(RATE_FEATURES)
    fit = choice.metrics[HYBRID_FIT_METRIC]
    assert len(fit["candidates"]) == 2 and fit["guarded"]["windows"] == ["1", "2", "3"]
    assert fit["auc"] == max(fit["candidates"].values())
    store.close()
