"""``lsat topics`` on the session tansu broker: creates the project topics once, idempotently."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from lsat.apps.cli import build_parser
from lsat.core.settings import KafkaSettings, Settings, TopicNames
from lsat.stream.kafka_client import kafka_python_kwargs
from lsat.stream.topics import topic_specs

pytestmark = pytest.mark.kafka


def _unique_topics() -> TopicNames:
    tag = uuid.uuid4().hex[:8]
    fields = [f.name for f in dataclasses.fields(TopicNames)]
    return TopicNames(*(f"{getattr(TopicNames(), name)}.{tag}" for name in fields))


def _run(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args, settings)


def test_topics_command_creates_then_keeps(
    kafka_settings: KafkaSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka = dataclasses.replace(kafka_settings, topics=_unique_topics())
    settings = Settings(home=tmp_path, kafka=kafka)
    assert _run(["topics", "--timeout", "30"], settings) == 0
    first = capsys.readouterr().out.splitlines()
    wanted = {spec.name for spec in topic_specs(kafka.topics)}
    assert sorted(first) == sorted(f"{name}: created" for name in wanted)
    admin = KafkaAdminClient(**kafka_python_kwargs(kafka))
    try:
        assert wanted <= set(admin.list_topics())
    finally:
        admin.close()
    assert _run(["topics"], settings) == 0  # the second run changes nothing
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        f"{name}: exists" for name in wanted
    )


@pytest.mark.parametrize("partitions", [0, -3])
def test_topics_command_names_bad_partitions(
    partitions: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    assert _run(["topics", "--partitions", str(partitions)], settings) == 2
    assert str(partitions) in capsys.readouterr().err
