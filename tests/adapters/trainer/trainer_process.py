"""A real trainer process for the kill tests: ``python trainer_process.py SETTINGS_JSON``.

The JSON holds ``home``, ``db_url``, ``bootstrap`` and the ``retrain`` / ``versions`` topics and
``group`` (optionally ``epochs``); the process runs :func:`lsat.adapters.trainer.run_trainer` for
one
job with child training.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainer_helpers import trainer_settings

from lsat.adapters.trainer import run_trainer
from lsat.core.settings import KafkaSettings


def main() -> int:
    spec = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    settings = trainer_settings(
        Path(spec["home"]), spec["db_url"], group_id=spec["group"], epochs=spec.get("epochs", 1)
    )
    kafka = KafkaSettings(bootstrap_servers=spec["bootstrap"])
    topics = replace(kafka.topics, retrain=spec["retrain"], versions=spec["versions"])
    stream = replace(settings.stream, session_timeout_s=2.0, heartbeat_interval_s=0.5)
    settings = replace(settings, kafka=replace(kafka, topics=topics), stream=stream)
    return 0 if run_trainer(settings, max_jobs=1) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
