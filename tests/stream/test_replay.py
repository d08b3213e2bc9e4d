"""Replay against the real tansu broker: order, keys, timestamps, filters, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsat.core.settings import KafkaSettings
from lsat.data.loaders import load_dataset
from lsat.data.types import Dataset, Interaction, Item
from lsat.stream.replay import (
    ReplayCheckpoint,
    ReplayError,
    pacing_delay_s,
    parse_speed,
    replay,
    select_interactions,
)

TOY = Dataset(
    "toy",
    [
        Interaction(f"u{n % 3}", f"i{n}", 900_000_000 + 10 * n, n % 2, float(1 + n % 5))
        for n in range(20)
    ],
    {"i1": Item("i1", "One"), "i2": Item("i2", "Two", {"genres": "Drama"})},
)


@pytest.mark.parametrize(
    ("start", "end", "limit", "after", "expected"),
    [
        (None, None, None, -1, list(range(20))),
        (900_000_050, None, 3, -1, [5, 6, 7]),
        (None, 900_000_030, None, -1, [0, 1, 2]),
        (None, None, 2, 17, [18, 19]),
        (None, None, 0, -1, []),
    ],
)
def test_select_interactions(start, end, limit, after, expected) -> None:
    got = [i for i, _ in select_interactions(TOY, start, end, limit, after)]
    assert got == expected


@pytest.mark.parametrize(("text", "speed"), [("max", 0.0), ("0", 0.0), ("2.5", 2.5)])
def test_parse_speed(text: str, speed: float) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["-1", "fast", "nan"])
def test_parse_speed_rejects(text: str) -> None:
    with pytest.raises(ReplayError, match=repr(text)):
        parse_speed(text)


def test_pacing_never_negative() -> None:
    assert pacing_delay_s(0, 10, 1.0, 50.0) == 0.0
    assert pacing_delay_s(0, 10, 0.0, 0.0) == 0.0


@pytest.mark.kafka
def test_replay_publishes_catalogue_and_time_ordered_events(
    fresh_kafka: KafkaSettings, tmp_path: Path, consume
) -> None:
    checkpoint = tmp_path / "replay.json"
    summary = replay(TOY, fresh_kafka, limit=12, checkpoint_path=checkpoint, progress=False)
    assert (summary.items, summary.events) == (2, 12)
    items = consume(fresh_kafka, fresh_kafka.topics.items, 2)
    assert sorted(json.loads(r.value)["title"] for r in items) == ["One", "Two"]
    records = consume(fresh_kafka, fresh_kafka.topics.interactions, 12)
    assert len(records) == 12
    for record in records:
        body = json.loads(record.value)
        assert record.key.decode() == body["user_id"]
        assert record.timestamp == body["timestamp"] * 1000
    by_user: dict[str, list[int]] = {}
    for record in records:
        by_user.setdefault(record.key.decode(), []).append(json.loads(record.value)["timestamp"])
    assert all(ts == sorted(ts) for ts in by_user.values())
    assert ReplayCheckpoint.load(checkpoint) == ReplayCheckpoint(
        "toy", 11, TOY.interactions[11].key()
    )

    rest = replay(
        TOY,
        fresh_kafka,
        resume=True,
        checkpoint_path=checkpoint,
        publish_items=False,
        progress=False,
    )
    assert (rest.events, rest.skipped_resume) == (8, 12)
    records = consume(fresh_kafka, fresh_kafka.topics.interactions, 20)
    ids = sorted(json.loads(r.value)["event_id"] for r in records)
    assert ids == sorted(i.key() for i in TOY.interactions)


@pytest.mark.kafka
def test_replay_ml100k_slice(fresh_kafka: KafkaSettings, ml100k_dir: Path, consume) -> None:
    dataset = load_dataset(ml100k_dir)
    summary = replay(dataset, fresh_kafka, limit=2000, progress=False, publish_items=False)
    assert summary.events == 2000 and summary.bytes > 2000 * 50
    records = consume(fresh_kafka, fresh_kafka.topics.interactions, 2000)
    assert len(records) == 2000


def test_resume_refuses_other_dataset(tmp_path: Path, kafka_settings: KafkaSettings) -> None:
    path = tmp_path / "cp.json"
    ReplayCheckpoint("other", 3, "x").save(path)
    with pytest.raises(ReplayError, match="'other'"):
        replay(TOY, kafka_settings, resume=True, checkpoint_path=path, progress=False)
