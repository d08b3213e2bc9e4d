"""Skip the retrain requests of the windows the long-term adapter was bootstrapped on.

``lsat up`` trains the long adapter on the first windows itself; the trainer must then start
after their retrain requests, so their offset is committed for the trainer's consumer group.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from lsat.apps.orchestrator.errors import OrchestratorError
from lsat.core.settings import Settings

__all__ = ["skip_offset", "skip_retrain_requests"]


def skip_retrain_requests(settings: Settings, up_to_window: int, timeout_s: float = 60.0) -> int:
    """Commit the trainer group's offset past the retrain request of ``up_to_window`` (those
    windows trained the long adapter); returns the committed offset."""
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    from lsat.stream.kafka_client import kafka_python_kwargs
    from lsat.stream.triggers import RetrainRequest

    topic = settings.kafka.topics.retrain
    consumer = KafkaConsumer(
        **kafka_python_kwargs(settings.kafka),
        group_id=settings.trainer.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + timeout_s
        windows: list[tuple[int, int]] = []  # (offset, window id)
        quiet_polls = 0
        while time.monotonic() < deadline and quiet_polls < 3:
            batch = [r for rs in consumer.poll(timeout_ms=500).values() for r in rs]
            windows += [(r.offset, RetrainRequest.from_json(r.value).window_id) for r in batch]
            seen_target = any(w >= up_to_window for _, w in windows)
            quiet_polls = quiet_polls + 1 if seen_target and not batch else 0
        if not any(w >= up_to_window for _, w in windows):
            raise OrchestratorError(
                f"no retrain request for window {up_to_window} within {timeout_s}s"
            )
        offset = skip_offset(windows, up_to_window)
        consumer.commit({partition: OffsetAndMetadata(offset, None, -1)})
        return offset
    finally:
        consumer.close()


def skip_offset(requests: Sequence[tuple[int, int]], up_to_window: int) -> int:
    """The offset to resume at: the first request for a window after ``up_to_window``, else past
    the last request read (repeated requests for skipped windows before it are skipped too).

    >>> skip_offset([(0, 1), (1, 1), (2, 2), (3, 3)], 1)
    2
    >>> skip_offset([(0, 1), (1, 2)], 2)
    2
    """
    later = [offset for offset, window in requests if window > up_to_window]
    return min(later, default=max(offset for offset, _ in requests) + 1)
