"""uvicorn's h11 protocol with a deadline for request headers and JSON protocol errors.

uvicorn closes idle kept-alive connections (``timeout_keep_alive``) but sets no deadline for a
request's headers: a client that opens a connection, or sends half a request line, and then
stalls would hold it forever. :func:`timed_h11_protocol` adds one: from the connection's start,
and again after every response, the client has ``header_timeout_s`` to complete its headers;
then the connection is closed — silently when it sent nothing (an idle connection), with a
JSON 408 when it had started a request. (The body has its own deadline in
:class:`~lsat.adapters.serving.guard.RequestGuard`.) A malformed request (a negative or
non-numeric ``Content-Length``, a broken request line) is answered with a JSON 400 instead of
uvicorn's plain text. Every TCP connection gets ``TCP_NODELAY``: uvicorn writes a response's
head and body separately, and with Nagle's algorithm on the body waits for the client's delayed
ACK (~40 ms on Linux) — asyncio sets it only on sockets created with ``IPPROTO_TCP``.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from lsat.adapters.serving.guard import error_bytes

__all__ = ["timed_h11_protocol"]


def _raw_response(status: int, reason: str, message: str) -> bytes:
    """A complete JSON error answer written past h11 (the connection closes right after)."""
    request_id = uuid.uuid4().hex
    body = error_bytes(message, request_id)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class _TimedH11Protocol(H11Protocol):
    header_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._bytes_since_armed = False

    def _arm(self) -> None:
        self._disarm()
        self._bytes_since_armed = False
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    # uvicorn narrows asyncio.BaseProtocol.connection_made to a Transport (its own ignore)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._bytes_since_armed = self._bytes_since_armed or bool(data)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._bytes_since_armed:
            message = f"request headers not received within {self.header_timeout_s:g}s"
            self.transport.write(_raw_response(408, "Request Timeout", message))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        message = "malformed HTTP request (request line, headers or Content-Length)"
        self.transport.write(_raw_response(400, "Bad Request", message))
        self.transport.close()


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Small writes go out at once (no Nagle) on a TCP connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def timed_h11_protocol(header_timeout_s: float) -> type[H11Protocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)``."""
    return type("TimedH11Protocol", (_TimedH11Protocol,), {"header_timeout_s": header_timeout_s})
