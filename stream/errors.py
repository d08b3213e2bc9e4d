"""The exception tree of the streaming side.

::

    StreamError                 root: catch this to catch everything raised by ``stream``
    ├── InvalidEvent            a message on a topic failed validation (has ``reason_code``)
    └── InvalidConfig           a policy/detector was built with impossible settings
"""

from __future__ import annotations

__all__ = ["InvalidConfig", "InvalidEvent", "StreamError"]


class StreamError(Exception):
    """Root of every error raised by the streaming side."""


class InvalidEvent(StreamError):
    """A message failed validation; ``reason_code`` is a short stable slug for metrics/DLQ.

    >>> err = InvalidEvent("bad_label", "label must be 0 or 1, got 7")
    >>> err.reason_code, str(err)
    ('bad_label', 'bad_label: label must be 0 or 1, got 7')
    """

    def __init__(self, reason_code: str, detail: str) -> None:
        super().__init__(f"{reason_code}: {detail}")
        self.reason_code = reason_code
        self.detail = detail


class InvalidConfig(StreamError, ValueError):
    """A window policy, detector or trigger was configured with an impossible value."""
