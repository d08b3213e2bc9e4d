"""``lsat produce`` against the session tansu broker: a file and stdin (a real process)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from lsat.apps.cli import build_parser
from lsat.core.settings import KafkaSettings, Settings
from lsat.stream.broker import free_port
from lsat.stream.events import parse_interaction
from lsat.stream.kafka_client import kafka_python_kwargs

pytestmark = pytest.mark.kafka
REPO_ROOT = Path(__file__).resolve().parents[2]


def event(user: str, k: int) -> bytes:
    body = {"user_id": user, "item_id": f"i{k}", "rating": 1 + k % 5, "timestamp": 880000000 + k}
    return json.dumps(body).encode()


def run(argv: list[str], kafka: KafkaSettings, tmp_path: Path) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, Settings(home=tmp_path, kafka=kafka))


def test_file_with_bad_lines(
    fresh_kafka: KafkaSettings, tmp_path: Path, consume, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [event(f"u{k % 7}", k) for k in range(40)]
    lines = [*good[:10], b"", b"{not json", *good[10:25], b'{"item_id": "i1"}', b"[1]"]
    lines += [*good[25:], b'{"user_id": "u1", "x": "\xff"}']
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    topic = fresh_kafka.topics.interactions

    assert run(["produce", str(path)], fresh_kafka, tmp_path) == 1  # some lines were bad
    err = capsys.readouterr().err.splitlines()
    assert err[:4] == [
        f"{path}:12: not_json: Expecting property name enclosed in double quotes at column 2: "
        "'{not json'",
        f"{path}:28: missing_key: no 'user_id' field (or it is null)",
        f"{path}:29: not_object: a JSON list, not an object: [1]",
        f"{path}:45: not_utf8: invalid start byte at byte 24",
    ]
    assert err[4] == (
        f"sent 40 records ({sum(map(len, good)):,} bytes) to {topic}; skipped 4 lines "
        "(missing_key 1, not_json 1, not_object 1, not_utf8 1); failed 0"
    )
    records = consume(fresh_kafka, topic, len(good) + 1, timeout_s=3)  # no extra record
    assert sorted(r.value for r in records) == sorted(good)
    by_key = defaultdict(list)
    for r in records:
        by_key[r.key].append(r)
        assert r.key == json.loads(r.value)["user_id"].encode()
        parse_interaction(r.value)  # what the worker accepts
    assert len(by_key) == 7
    assert all(len({r.partition for r in rs}) == 1 for rs in by_key.values())
    assert len({r.partition for r in records}) == 2  # keys spread over both partitions
    for rs in by_key.values():  # per key, in file order
        assert [r.value for r in sorted(rs, key=lambda r: r.offset)] == [
            v for v in good if json.loads(v)["user_id"].encode() == rs[0].key
        ]


def test_stdin_in_a_real_process_with_a_json_summary(
    fresh_kafka: KafkaSettings, tmp_path: Path, consume
) -> None:
    items = [json.dumps({"item_id": f"i{k}", "title": f"Film {k}"}).encode() for k in range(25)]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LSAT_HOME": str(tmp_path),
        "LSAT_KAFKA_BOOTSTRAP": fresh_kafka.bootstrap_servers or "",
    }
    command = [sys.executable, "-m", "lsat.apps.cli", "produce", "--json"]
    done = subprocess.run(
        [*command, "--key-field", "item_id", "--topic", fresh_kafka.topics.items],
        input=b"\n".join(items),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary == {
        "topic": fresh_kafka.topics.items,
        "sent": 25,
        "bytes": sum(map(len, items)),
        "skipped": {},
        "failed": {},
        "dry_run": False,
    }
    records = consume(fresh_kafka, fresh_kafka.topics.items, 26, timeout_s=3)
    assert sorted((r.key, r.value) for r in records) == sorted(
        (json.loads(v)["item_id"].encode(), v) for v in items
    )


def test_unknown_topic_or_no_broker_sends_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(event("u1", 1))
    argv = ["produce", str(path), "--timeout", "2"]
    missing = f"no.such.topic.{uuid.uuid4().hex[:8]}"
    assert run([*argv, "--topic", missing], kafka_settings, tmp_path) == 1
    assert f"nothing sent: topic {missing!r} not found" in capsys.readouterr().err
    admin = KafkaAdminClient(**kafka_python_kwargs(kafka_settings))
    try:
        assert missing not in admin.list_topics()  # not created by the attempt
    finally:
        admin.close()
    nobody = dataclasses.replace(kafka_settings, bootstrap_servers=f"127.0.0.1:{free_port()}")
    assert run(argv, nobody, tmp_path) == 1
    assert "nothing sent: no Kafka broker at 127.0.0.1:" in capsys.readouterr().err
    assert run([*argv, "--dry-run"], nobody, tmp_path) == 0
    assert capsys.readouterr().err.startswith("would send 1 records")
