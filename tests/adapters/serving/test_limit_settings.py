"""The scorer's limits as settings: ``LSAT_SCORER_*`` → :class:`ServerLimits` → the real server's
answers; an ``lsat serve`` flag beats its variable, which beats the default."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from lsat.adapters.serving import Scorer, ServerLimits
from lsat.apps.cli import build_parser
from lsat.apps.serve_command import LIMIT_FLAGS, _limits
from lsat.core.settings import ScorerSettings, Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
HISTORY = [{"item_id": str(i), "label": i % 2} for i in range(6)]
TOKEN = {"LSAT_ADMIN_TOKEN": "s3cret-token"}

# per limit: (a value for the variable, another for the flag), both unlike the default
VALUES: dict[str, tuple[str, str]] = {
    "max_body_bytes": ("2048", "4096"),
    "request_timeout_s": ("2.5", "7"),
    "keep_alive_s": ("1.5", "3"),
    "max_concurrency": ("2", "3"),
    "max_queue": ("0", "4"),
    "max_candidates": ("5", "7"),
    "retry_after_s": ("3", "4"),
    "shutdown_timeout_s": ("2", "20"),
}


def post(scorer: Scorer, path: str, body: dict[str, Any]) -> tuple[int, Message, Any]:
    """(status, headers (case-insensitive), JSON body) of one POST, errors included."""
    data = json.dumps(body).encode()
    req = urllib.request.Request(scorer.url + path, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.headers, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def score(scorer: Scorer, count: int) -> int:
    items = [str(i) for i in range(count)]
    return post(scorer, "/score", {"user_id": "u1", "item_ids": items, "history": HISTORY})[0]


def serve_limits(argv: list[str], env: dict[str, str]) -> ServerLimits:
    """The limits ``lsat serve ARGV`` runs with in environment ``env``."""
    return _limits(build_parser().parse_args(["serve", *argv]), Settings.from_env(env))


def test_the_defaults_are_one_set_of_numbers() -> None:
    assert ServerLimits() == ServerLimits.from_settings(ScorerSettings())
    assert set(LIMIT_FLAGS) == {f.name for f in dataclasses.fields(ServerLimits)}
    assert set(LIMIT_FLAGS) < {f.name for f in dataclasses.fields(ScorerSettings)}
    assert set(VALUES) == set(LIMIT_FLAGS)


@pytest.mark.parametrize("name", LIMIT_FLAGS)
def test_a_flag_beats_its_variable_which_beats_the_default(name: str) -> None:
    variable, flag = f"LSAT_SCORER_{name.upper()}", f"--{name.replace('_', '-')}"
    env_text, flag_text = VALUES[name]
    default = getattr(ServerLimits(), name)
    from_env = getattr(serve_limits([], {variable: env_text}), name)
    from_flag = getattr(serve_limits([flag, flag_text], {variable: env_text}), name)
    assert getattr(serve_limits([], {}), name) == default
    assert from_env == type(default)(env_text) != default
    assert from_flag == type(default)(flag_text) != from_env


def test_compose_and_env_example_pass_every_limit_to_the_scorer() -> None:
    import yaml

    names = {
        f"LSAT_SCORER_{name.upper()}"
        for name in (*LIMIT_FLAGS, "memory_trim_s", "prefix_cache_mb", "bf16")
    }
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    scorer_env = compose["services"]["scorer"]["environment"]
    assert {k: scorer_env[k] for k in names} == {k: f"${{{k}:-}}" for k in names}
    example = (REPO_ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^(LSAT_SCORER_\w+)=(.*)$", example, re.MULTILINE))
    assert Settings.from_env(documented).scorer == ScorerSettings()  # the defaults, stated
    assert set(documented) == names


def test_the_memory_trim_setting_reaches_the_service(make_scorer: Callable[..., Scorer]) -> None:
    assert make_scorer(settings=Settings.from_env(TOKEN)).service.trimmer.interval_s == 1.0
    off = make_scorer(settings=Settings.from_env({**TOKEN, "LSAT_SCORER_MEMORY_TRIM_S": "0"}))
    assert off.service.trimmer.interval_s is None
    every = make_scorer(settings=Settings.from_env({**TOKEN, "LSAT_SCORER_MEMORY_TRIM_S": "2.5"}))
    assert every.service.trimmer.interval_s == 2.5


@pytest.mark.parametrize(("value", "bf16"), [("on", True), ("off", False)])
def test_the_bf16_setting_overrides_the_capability(
    make_scorer: Callable[..., Scorer], value: str, bf16: bool
) -> None:
    settings = Settings.from_env({**TOKEN, "LSAT_SCORER_BF16": value})
    assert make_scorer(settings=settings).service.bf16 is bf16


def test_a_bad_limit_variable_is_named() -> None:
    with pytest.raises(ValueError, match="LSAT_SCORER_MAX_QUEUE='-1'"):
        Settings.from_env({"LSAT_SCORER_MAX_QUEUE": "-1"})


def test_max_candidates_from_the_environment_limits_the_real_server(
    make_scorer: Callable[..., Scorer],
) -> None:
    scorer = make_scorer(settings=Settings.from_env({**TOKEN, "LSAT_SCORER_MAX_CANDIDATES": "5"}))
    assert scorer.limits.max_candidates == 5
    assert score(scorer, 5) == 200
    status, _, body = post(
        scorer, "/score", {"user_id": "u1", "item_ids": list("123456"), "history": HISTORY}
    )
    assert status == 413 and "item_ids" in body["error"], body
    status, _, body = post(
        scorer, "/recommend", {"user_id": "u1", "candidates": list("123456"), "history": HISTORY}
    )
    assert status == 413 and "candidates" in body["error"], body


def test_the_flag_beats_the_variable_on_the_real_server(
    make_scorer: Callable[..., Scorer],
) -> None:
    env = {**TOKEN, "LSAT_SCORER_MAX_CANDIDATES": "5"}
    limits = serve_limits(["--max-candidates", "7"], env)
    scorer = make_scorer(settings=Settings.from_env(env), limits=limits)
    assert (score(scorer, 7), score(scorer, 8)) == (200, 413)


def test_overload_limits_and_retry_after_from_the_environment(
    make_scorer: Callable[..., Scorer],
) -> None:
    env = {
        **TOKEN,
        "LSAT_SCORER_MAX_CONCURRENCY": "1",
        "LSAT_SCORER_MAX_QUEUE": "0",
        "LSAT_SCORER_RETRY_AFTER_S": "3",
    }
    scorer = make_scorer(settings=Settings.from_env(env))
    admitted: list[int] = []
    with scorer.model_lock:  # the one admitted request waits for the model
        first = threading.Thread(target=lambda: admitted.append(score(scorer, 2)))
        first.start()
        deadline = time.monotonic() + 30
        while scorer.admission.admitted < 1 and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
        refused = post(scorer, "/score", {"user_id": "u1", "item_ids": ["1"], "history": HISTORY})
    first.join(30)
    status, headers, body = refused
    assert (status, headers.get("Retry-After")) == (503, "3"), body
    assert admitted == [200]
