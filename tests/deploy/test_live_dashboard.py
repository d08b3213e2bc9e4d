"""THE LIVE TEST: every dashboard query returns data from a real Prometheus scraping real processes.

It rides on the shared ``live_system`` run (tests/live_system.py, also behind
tests/test_end_to_end.py): a private tansu broker gets malformed events and an ml-100k replay
whose last third has every label flipped; the real worker, ``lsat trainer`` (after
``--bootstrap-long``) and scorer run as child processes on the tiny random Llama; the scorer
answers /score requests (one a 400); the real Prometheus (Debian 2.42) scrapes all three every
second. Every panel ``expr`` and annotation query of deploy/grafana/dashboards/lsat.json then goes
through /api/v1/query_range and must return at least one series.
"""

from __future__ import annotations

import pytest
from deploy_paths import dashboard_queries
from needs import missing

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_every_dashboard_query_returns_data(live_system) -> None:  # type: ignore[no-untyped-def]
    from live_system import NOT_COVERED

    result = live_system
    if not result.prometheus:
        missing("prometheus not installed (apt-get install prometheus; .ci/run does it)")
    assert result.code == 0, f"lsat up exited {result.code}; logs in {result.logs}"
    assert "dashboard" not in result.errors, result.errors.get("dashboard")
    wheres = {where for where, _ in dashboard_queries()}
    assert set(NOT_COVERED) <= wheres  # every exemption names a real query
    covered = [expr for _, expr in result.queries]
    assert len(covered) == len(wheres) - len(NOT_COVERED) >= 20
    for metric in ("lsat_window_id", "lsat_stream_drift_detections_total", "dead_letters"):
        assert any(metric in expr for expr in covered), metric
    assert not result.missing, "queries without data:\n" + "\n".join(result.missing)
