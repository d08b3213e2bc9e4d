"""``lsat adapters ...`` through ``lsat.apps.cli.main`` on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsat.adapters.lifecycle.registry import open_registry
from lsat.apps.cli import main


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite registry with long/v1, short/v1, short/v2 and one evaluation; the operator's
    environment holds the admin token and presents it (``LSAT_CLIENT_TOKEN``)."""
    monkeypatch.delenv("LSAT_DATABASE_URL", raising=False)
    for name in ("LSAT_ADMIN_TOKEN", "LSAT_CLIENT_TOKEN"):
        monkeypatch.setenv(name, "operator-token")
    monkeypatch.setenv("COLUMNS", "160")
    db_url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    with open_registry(db_url) as registry:
        registry.register("long", path="/art/long-1", sha256="a" * 64, trigger="bootstrap")
        registry.register("short", path="/art/short-1", sha256="b" * 64, metrics={"val_auc": 0.7})
        registry.register("short", path="/art/short-2", sha256="c" * 64, window_id=[8, 9])
        registry.record_evaluation("short", 2, 10, auc=0.73, logloss=0.6, n=250)
    return db_url


def lsat(url: str, *argv: str) -> int:
    return main(["--database-url", url, "adapters", *argv])


def read_json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_promote_show_and_rollback_round_trip(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert lsat(url, "promote", "short", "1", "--reason", "bootstrap", "--actor", "alice") == 0
    assert lsat(url, "promote", "short", "2", "--reason", "AUC 0.73") == 0
    capsys.readouterr()
    assert lsat(url, "show", "serving-short", "--json") == 0
    shown = read_json(capsys)
    assert isinstance(shown, dict)
    assert (shown["kind"], shown["version"], shown["aliases"]) == ("short", 2, ["serving-short"])
    assert shown["window_ids"] == [8, 9]
    assert [e["auc"] for e in shown["evaluations"]] == [0.73]
    history = shown["alias_history"]
    assert [(h["target"], h["previous"], h["reason"]) for h in history] == [
        ("short/v1", None, "bootstrap"),
        ("short/v2", "short/v1", "AUC 0.73"),
    ]
    assert history[0]["actor"] == "alice" and history[1]["actor"].startswith("cli")

    assert lsat(url, "rollback", "serving-short", "--reason", "regressed") == 0
    assert "short/v1" in capsys.readouterr().out
    with open_registry(url) as registry:
        assert str(registry.resolve("serving-short").key) == "short/v1"  # type: ignore[union-attr]
    assert lsat(url, "rollback", "serving-short", "--reason", "again") == 1
    assert "error [no_previous_target]" in capsys.readouterr().err


def test_list_as_json_and_as_a_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert lsat(url, "list", "--kind", "short", "--json") == 0
    assert [(v["kind"], v["version"]) for v in read_json(capsys)] == [  # type: ignore[union-attr]
        ("short", 2),
        ("short", 1),
    ]
    assert lsat(url, "promote", "long", "1", "--reason", "first long") == 0
    capsys.readouterr()
    assert lsat(url, "list") == 0
    out = capsys.readouterr().out
    assert "adapter versions (3)" in out
    assert all(key in out for key in ("long/v1", "short/v1", "short/v2", "serving-long", "0.7000"))


def test_show_a_version_as_a_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert lsat(url, "show", "short", "v2") == 0
    out = capsys.readouterr().out
    assert all(text in out for text in ("short/v2", "c" * 64, "/art/short-2", "0.7300", "250"))


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("show", "short", "9"), "adapter_version_not_found"),
        (("show", "short", "nine"), "invalid_value"),
        (("show", "serving-merged"), "alias_not_found"),
        (("show", "a", "b", "c"), "invalid_value"),
        (("promote", "long", "7", "--reason", "r"), "adapter_version_not_found"),
        (("promote", "short", "1", "--alias", "serving-long", "--reason", "r"), "invalid_value"),
        (("promote", "short", "1", "--reason", " "), "invalid_value"),
        (("rollback", "serving-short", "--reason", "r"), "alias_not_found"),
    ],
)
def test_errors_exit_1_with_their_code(
    url: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], code: str
) -> None:
    assert lsat(url, *argv) == 1
    assert f"error [{code}]" in capsys.readouterr().err


def test_promote_to_a_named_alias(url: str) -> None:
    assert lsat(url, "promote", "short", "2", "--alias", "candidate", "--reason", "trained") == 0
    with open_registry(url) as registry:
        assert {k: str(v) for k, v in registry.aliases().items()} == {"candidate": "short/v2"}


@pytest.mark.parametrize(
    ("admin_token", "flag", "client_env", "allowed"),
    [
        (None, None, None, False),  # no admin token configured: admin actions are disabled
        (None, "s3cret", "s3cret", False),
        ("s3cret", None, None, True),  # the operator's own LSAT_ADMIN_TOKEN is presented
        ("s3cret", "wrong", None, False),
        ("s3cret", "s3cre", None, False),
        ("s3cret", "s3cret", None, True),
        ("s3cret", None, "s3cret", True),
        ("s3cret", "wrong", "s3cret", False),  # an explicit --token wins over the environment
    ],
)
def test_admin_actions_need_the_configured_token(
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    admin_token: str | None,
    flag: str | None,
    client_env: str | None,
    allowed: bool,
) -> None:
    for name in ("LSAT_ADMIN_TOKEN", "LSAT_CLIENT_TOKEN"):
        monkeypatch.delenv(name)
    if admin_token:
        monkeypatch.setenv("LSAT_ADMIN_TOKEN", admin_token)
    if client_env:
        monkeypatch.setenv("LSAT_CLIENT_TOKEN", client_env)
    token = ["--token", flag] if flag else []
    promote = lsat(url, "promote", "short", "1", "--reason", "r", *token)
    assert promote == (0 if allowed else 1)
    with open_registry(url) as registry:
        registry.set_alias("serving-short", "short", 2, reason="setup", actor="test")
    rollback = lsat(url, "rollback", "serving-short", "--reason", "r", *token)
    with open_registry(url) as registry:
        served = registry.resolve("serving-short")
        history = registry.alias_history("serving-short")
    if allowed:
        assert rollback == 0 and served.version == 1  # type: ignore[union-attr]
        assert len(history) == 3
    else:
        assert rollback == 1 and served.version == 2  # type: ignore[union-attr]
        assert len(history) == 1  # only the test's own set: nothing recorded for refusals
        assert "error [admin_token_invalid]" in capsys.readouterr().err
