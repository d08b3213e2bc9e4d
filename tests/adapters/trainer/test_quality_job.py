"""Retrain jobs with the quality options on the tiny Llama and a real registry and store: the
long adapter's bootstrap brings a rates-only combiner (fitted on its windows' samples only) that
serves the first retrained window; later combiners are fitted on earlier windows' out-of-sample
rows (kept across a trainer restart), travel in the serving set, are scored on the next window
next to the baselines; the short adapter can start from the long one; every adapter records the
prompt it learned."""

from __future__ import annotations

from pathlib import Path

from trainer_helpers import fill_windows, trainer_settings

from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.hybrid_features import RATE_FEATURES, rate_columns
from lsat.adapters.lifecycle.publication import HYBRID_METRIC, ServingSet
from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.model.hybrid import HybridCombiner, fit_combiner
from lsat.adapters.trainer import bootstrap_long, build_retrainer
from lsat.adapters.trainer.child import run_job
from lsat.adapters.trainer.combiner import HYBRID_FIT_METRIC
from lsat.adapters.trainer.metrics import TrainerMetrics
from lsat.adapters.trainer.options import QualityOptions
from lsat.stream.store import SampleStore
from lsat.stream.triggers import RetrainRequest

OPTIONS = QualityOptions(
    prompt_format="chat", item_noun="film", short_init="long", patience=1, combiner_min_rows=30
)


def _request(window_id: int) -> RetrainRequest:
    return RetrainRequest(window_id, 0, 10, 40, "full", {}, 1.0)


def test_hybrid_is_fitted_out_of_sample_served_and_scored(tmp_path: Path, sqlite_url: str) -> None:
    # margin 1: the guards always let the new adapter and combiner through (tiny random model)
    settings = trainer_settings(
        tmp_path, sqlite_url, margin=1.0, epochs=2, long_bootstrap_windows=1
    )
    fill_windows(sqlite_url, {1: 40, 2: 40, 3: 40, 4: 40}, annotate=True)
    published: list[ServingSet] = []
    with open_registry(sqlite_url) as registry:
        store = SampleStore(sqlite_url)
        for window in (1, 2, 3, 4):
            store.close_window(window, "full")
        # the first long_bootstrap_windows closed windows: window 1
        long = bootstrap_long(settings, registry, store=store, train_fn=run_job, options=OPTIONS)
        assert [str(w) for w in long.window_ids] == ["1"]
        # with it, a rates-only combiner fitted on the bootstrap window's samples alone
        rates = HybridCombiner.from_dict(long.metrics[HYBRID_METRIC])
        assert set(rates.features) == set(RATE_FEATURES), rates
        assert long.metrics[HYBRID_FIT_METRIC] == {"windows": ["1"], "rows": 40, "note": rates.note}
        own = store.window_samples(1)
        columns = rate_columns(own)
        refit = fit_combiner(columns, [s.label for s in own], list(rates.features))
        assert refit.weights == rates.weights and refit.intercept == rates.intercept
        leaky = [*own, *store.window_samples(2)]  # what a fit that saw window 2 would give
        other = fit_combiner(rate_columns(leaky), [s.label for s in leaky], list(rates.features))
        assert other.weights != rates.weights
        first = build_retrainer(
            settings, registry, store, publish=published.append, train_fn=run_job, options=OPTIONS
        )
        two = first.handle(_request(2))  # no scored rows yet: served by the long's combiner
        assert two.outcome == "promoted"
        assert {"served", "long", "baseline", "hybrid"} <= set(two.window_metrics)  # no short yet
        assert two.window_metrics["served"] == two.window_metrics["hybrid"]  # not the α ensemble
        expected = rates.predict_proba(rate_columns(store.window_samples(2)))
        stored = registry.window_scores()[-1].columns["p_served"]
        assert stored == [round(float(p), 6) for p in expected]
        # the rate stack of window 2 is fitted on the bootstrap window's stored samples
        assert two.window_metrics["baseline"] == two.window_metrics["rate_stack"]
        # too few scored rows before window 2: the new combiner is rates-only on window 1
        assert published[-1].hybrid is not None and published[-1].hybrid.note.startswith(
            "rates only: 40 rows of windows 1..1"
        )
        three = first.handle(_request(3))  # fitted on window 2's rows, checked on window 3's
        assert three.outcome == "promoted" and published[-1].hybrid is not None
        assert three.window_metrics["served"] == three.window_metrics["hybrid"]
        # window 2's combiner was refitted on windows 1-2 once checked: the rate stack of 3
        assert three.window_metrics["hybrid"] == three.window_metrics["rate_stack"]
        metrics = TrainerMetrics()
        restarted = build_retrainer(  # a new trainer process: the rows come from the registry
            settings, registry, store, publish=published.append, train_fn=run_job,
            options=OPTIONS, metrics=metrics,
        )  # fmt: skip
        four = restarted.handle(_request(4))
        assert four.outcome == "promoted"
        assert four.window_metrics["served"] == four.window_metrics["hybrid"]
        text = metrics.render().decode()
        for model in ("hybrid", "served", "baseline", "history_rate", "long", "short"):
            assert f'lsat_window_auc{{model="{model}"}}' in text, model
        shorts = {v.window_ids[-1]: v for v in registry.list(kind="short")}
        for window, version in shorts.items():
            fit = version.metrics.get(HYBRID_FIT_METRIC)
            if fit is None:
                continue
            own = {s.event_id for s in store.window_samples(int(window))}
            guarded_on = [int(w) for w in fit["guarded"]["windows"]]
            assert max(guarded_on) < int(window), (window, fit)  # checked on unseen rows
            for w in guarded_on:
                assert own.isdisjoint(s.event_id for s in store.window_samples(w))
            assert max(int(w) for w in fit["windows"]) == int(window)  # refitted up to it
        assert shorts[2].metrics[HYBRID_FIT_METRIC]["guarded"]["windows"] == ["1"]
        assert shorts[2].metrics[HYBRID_FIT_METRIC]["windows"] == ["1", "2"]
        # window 3's combiner: the LLM logits on window 2's scored rows, or (when they did not
        # help out of fold) the rates on every row before window 3; then refitted up to 3
        three_fit = shorts[3].metrics[HYBRID_FIT_METRIC]
        llm = set(shorts[3].metrics[HYBRID_METRIC]["features"]) - set(RATE_FEATURES)
        assert three_fit["guarded"]["windows"] == (["2"] if llm else ["1", "2"]), three_fit
        assert three_fit["windows"] == (["2", "3"] if llm else ["1", "2", "3"]), three_fit
        assert [s.window_id for s in registry.window_scores()] == ["2", "3", "4"]
        assert ServingSet.from_json(published[-1].to_json()) == published[-1]
        # warm start from the long adapter, the prompt recorded in every adapter's metadata
        assert shorts[4].metrics["short_init"] == f"warm from {long.key}"
        for version in (long, shorts[4]):
            metadata = load_adapter(Path(version.path)).metadata
            assert (metadata["prompt_format"], metadata["item_noun"]) == ("chat", "film")
        assert load_adapter(Path(shorts[4].path)).metadata["init_from"] == str(long.key)
        assert shorts[4].metrics["train_epochs_run"] <= 2
        store.close()
