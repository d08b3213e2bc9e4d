"""lsat/core/settings.py: env variables to settings sections."""

from __future__ import annotations

import pytest

from lsat.core.settings import Settings


@pytest.mark.parametrize(("env", "port"), [({}, 8080), ({"LSAT_SCORER_PORT": "9000"}, 9000)])
def test_scorer_port_comes_from_lsat_scorer_port(env: dict[str, str], port: int) -> None:
    assert Settings.from_env(env).scorer.port == port
