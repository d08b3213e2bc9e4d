"""The scorer's HTTP server under hostile and careless clients, over real sockets.

Each case of the table sends raw bytes to a running scorer (tiny Llama, real uvicorn) and checks
the status, the JSON error, whether the connection was closed, and that the server is still
healthy afterwards.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lsat.adapters.lifecycle.registry import open_registry
from lsat.adapters.serving import Scorer, ServerLimits, StoreHistory

HISTORY = [{"item_id": str(i), "label": i % 2} for i in range(6)]
LIMITS = ServerLimits(max_body_bytes=64 * 1024, request_timeout_s=1.0, keep_alive_s=5.0)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    closed: bool


def _address(scorer: Scorer) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(scorer.url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def _read_reply(sock: socket.socket, check_closed: bool = False) -> Reply | None:
    """One HTTP response (``None`` when the server closed without answering); with
    ``check_closed``, wait 0.5 s to see whether the server closes the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    try:
        body = json.loads(rest[:length])
    except ValueError:
        body = rest[:length].decode("latin-1")
    closed = False
    if check_closed:
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
    return Reply(status, headers, body, closed)


def exchange(
    scorer: Scorer,
    parts: list[bytes],
    *,
    stop_when_answered: bool = False,
    check_closed: bool = False,
) -> Reply:
    """Send ``parts`` one by one on a fresh connection, then read the reply.

    With ``stop_when_answered``, stop sending as soon as the server has answered (a refusal of
    a body still being sent).
    """
    with socket.create_connection(_address(scorer), timeout=15) as sock:
        for part in parts:
            if stop_when_answered and select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):  # refused mid-body: read why
                break
        reply = _read_reply(sock, check_closed)
    assert reply is not None, "server closed the connection without an answer"
    return reply


def request(path: str, body: bytes, *, method: str = "POST", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: scorer\r\nContent-Length: {len(body)}\r\n{extra}"
    return head.encode() + b"\r\n" + body


def chunked(path: str, chunks: list[bytes], *, final: bool = True) -> list[bytes]:
    head = f"POST {path} HTTP/1.1\r\nHost: scorer\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    parts = [head] + [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks]
    return parts + ([b"0\r\n\r\n"] if final else [])


def score_body(**fields: Any) -> bytes:
    return json.dumps({"user_id": "u1", "history": HISTORY, **fields}).encode()


def headers_only(path: str, content_length: str) -> list[bytes]:
    return [f"POST {path} HTTP/1.1\r\nHost: s\r\nContent-Length: {content_length}\r\n\r\n".encode()]


VALID = score_body(item_ids=["1", "2"])
BIG_CHUNKS = [b" " * 1024] * 66  # 66 KiB of whitespace: just over the 64 KiB limit, so the
# server has read all of it when it refuses (unread data would turn its close into a reset)
TWO_THOUSAND = [str(i) for i in range(2000)]

CASES: list[tuple[str, list[bytes], int, str, bool]] = [
    # name, what the client sends, status, text in the JSON error, connection closed
    ("negative Content-Length", headers_only("/score", "-1"), 400, "malformed HTTP", True),
    ("non-numeric Content-Length", headers_only("/score", "ten"), 400, "malformed HTTP", True),
    ("huge Content-Length", headers_only("/score", "9" * 16), 413, "exceeds the limit", True),
    ("absurd Content-Length", headers_only("/score", "9" * 30), 400, "malformed HTTP", True),
    (
        "two Content-Lengths",
        headers_only("/score", "5\r\nContent-Length: 6"),
        400,
        "malformed",
        True,
    ),
    ("Content-Length over limit", headers_only("/score", "70000"), 413, "70000 bytes", True),
    ("chunked body over limit", chunked("/score", BIG_CHUNKS, final=False), 413, "limit", True),
    ("truncated JSON", [request("/score", VALID[:-9])], 400, "body is not valid JSON", False),
    ("empty body", [request("/score", b"")], 400, "body is required", False),
    ("not UTF-8", [request("/score", b"\xff\xfe{")], 400, "error parsing the body", False),
    ("JSON array", [request("/score", b"[1, 2]")], 400, "must be a JSON object", False),
    (
        "unknown field",
        [request("/score", score_body(item_id="1", itemz=[2]))],
        400,
        "unknown field 'itemz'",
        False,
    ),
    (
        "wrong id type",
        [request("/score", score_body(item_ids=[1.5]))],
        400,
        "item_ids[0]: must be a string or integer id, got 1.5",
        False,
    ),
    (
        "wrong k type",
        [request("/recommend", score_body(candidates=["1"], k="3"))],
        400,
        "k: must be a positive integer, got '3'",
        False,
    ),
    (
        "2,000 candidates",
        [request("/recommend", score_body(candidates=TWO_THOUSAND, k=5))],
        413,
        "candidates has 2000 ids; at most 1000 per request",
        False,
    ),
    (
        "2,000 items to score",
        [request("/score", score_body(item_ids=TWO_THOUSAND))],
        413,
        "item_ids has 2000 ids; at most 1000",
        False,
    ),
    (
        "no candidates and no store",
        [request("/recommend", score_body(k=3))],
        400,
        "no candidates given and no store",
        False,
    ),
    ("unknown route", [request("/nope", b"{}")], 404, "no route POST /nope", False),
    ("wrong method", [request("/score", b"", method="GET")], 405, "not allowed", False),
    (
        "headers sent, body stalls",
        [headers_only("/score", "100")[0] + VALID[:10]],
        408,
        "request body not received within 1s",
        True,
    ),
    (
        "request line sent, headers stall",
        [b"POST /score HTTP/1.1\r\nHost: scorer\r\n"],
        408,
        "request headers not received within 1s",
        True,
    ),
]


@pytest.fixture(scope="module")
def shared_scorer(
    tmp_path_factory: pytest.TempPathFactory, scorer_starter: Callable[..., Scorer]
) -> Iterator[Scorer]:
    """One scorer for the whole table: each case must leave it healthy for the next."""
    folder = tmp_path_factory.mktemp("edges")
    with open_registry(f"sqlite:///{folder / 'registry.sqlite'}") as registry:
        scorer = scorer_starter(registry, folder, limits=LIMITS)
        yield scorer
        scorer.stop()


@pytest.mark.parametrize(
    ("parts", "status", "message", "closed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_requests_get_the_right_answer_and_the_server_stays_healthy(
    shared_scorer: Scorer, parts: list[bytes], status: int, message: str, closed: bool
) -> None:
    scorer = shared_scorer
    reply = exchange(scorer, parts, stop_when_answered=len(parts) > 1, check_closed=True)
    assert reply.status == status, reply
    assert message in reply.body["error"], reply.body
    assert reply.body["request_id"] == reply.headers["x-request-id"]
    assert reply.closed is closed, reply
    health = exchange(scorer, [request("/healthz", b"", method="GET")])
    assert (health.status, health.body) == (200, {"status": "ok", "serving": True})


def test_a_chunked_body_under_the_limit_is_scored_and_keep_alive_holds(
    make_scorer: Callable[..., Scorer],
) -> None:
    scorer = make_scorer(limits=LIMITS)
    with socket.create_connection(_address(scorer), timeout=15) as sock:
        for part in chunked("/score", [VALID[:20], VALID[20:]]):
            sock.sendall(part)
        first = _read_reply(sock, check_closed=True)
        assert first is not None and first.status == 200, first
        assert [e["item_id"] for e in first.body["items"]] == ["1", "2"]
        assert not first.closed  # kept alive: a second request on the same connection
        sock.settimeout(15)
        sock.sendall(request("/score", VALID))
        second = _read_reply(sock)
    assert second is not None and second.status == 200
    assert second.body["items"] == first.body["items"]


def test_connections_send_without_nagle_delay(shared_scorer: Scorer) -> None:
    """A response's head and body are separate writes: with Nagle's algorithm the body waits
    for the client's delayed ACK (~40 ms per request), so every accepted socket has NODELAY."""
    server = shared_scorer._server
    assert server is not None
    with socket.create_connection(_address(shared_scorer), timeout=15) as sock:
        sock.sendall(request("/healthz", b"", method="GET"))
        assert _read_reply(sock) is not None
        connections = list(server.server_state.connections)
        assert connections, "the server holds the open connection"
        for protocol in connections:
            accepted = protocol.transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_an_idle_connection_is_closed_after_the_header_timeout(
    make_scorer: Callable[..., Scorer],
) -> None:
    scorer = make_scorer(limits=LIMITS)
    with socket.create_connection(_address(scorer), timeout=15) as sock:
        assert sock.recv(1024) == b""  # closed without a word: it never started a request


def test_an_unexpected_failure_answers_500_without_internals(
    make_scorer: Callable[..., Scorer], tmp_path: Any
) -> None:
    broken = StoreHistory(f"sqlite:///{tmp_path / 'no-such-folder' / 'lsat.sqlite'}")
    scorer = make_scorer(limits=LIMITS, history_source=broken)
    reply = exchange(
        scorer, [request("/score", json.dumps({"user_id": "u1", "item_id": 1}).encode())]
    )
    assert reply.status == 500
    assert reply.body == {"error": "internal error", "request_id": reply.headers["x-request-id"]}
    ready = exchange(scorer, [request("/readyz", b"", method="GET")])
    assert ready.status == 503
    assert ready.body["checks"]["store"] == "unreachable: OperationalError", ready.body
    assert "sqlite" not in json.dumps(ready.body)


def test_ready_when_adapters_are_loaded_and_the_store_answers(
    make_scorer: Callable[..., Scorer],
) -> None:
    scorer = make_scorer(limits=LIMITS)
    ready = exchange(scorer, [request("/readyz", b"", method="GET")])
    assert (ready.status, ready.body) == (
        200,
        {
            "status": "ready",
            "checks": {"adapters": "ok", "versions_consumer": "disabled", "store": "ok"},
        },
    )


def test_over_the_concurrency_limit_requests_get_503_with_retry_after(
    make_scorer: Callable[..., Scorer],
) -> None:
    limits = ServerLimits(max_concurrency=1, max_queue=0, request_timeout_s=30.0)
    scorer = make_scorer(limits=limits)
    answers: list[Reply] = []
    with scorer.model_lock:  # the one admitted request waits for the model
        first = threading.Thread(
            target=lambda: answers.append(exchange(scorer, [request("/score", VALID)]))
        )
        first.start()
        deadline = time.monotonic() + 30
        while scorer.admission.admitted < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scorer.admission.admitted == 1
        refused = [exchange(scorer, [request("/score", VALID)]) for _ in range(8)]
    first.join(30)
    assert [r.status for r in refused] == [503] * 8
    assert {r.headers.get("retry-after") for r in refused} == {"1"}
    assert "scorer busy" in refused[0].body["error"]
    assert len(answers) == 1 and answers[0].status == 200, answers
    metrics = exchange(scorer, [request("/metrics", b"", method="GET")]).body
    assert 'lsat_scoring_rejected_total{reason="admission_full"} 8.0' in metrics
    assert 'lsat_scoring_requests_total{endpoint="/score",status="503"} 8.0' in metrics


def test_openapi_schema_documents_the_routes_and_400_not_422(
    make_scorer: Callable[..., Scorer],
) -> None:
    scorer = make_scorer(limits=LIMITS)
    reply = exchange(scorer, [request("/openapi.json", b"", method="GET")])
    assert reply.status == 200
    paths = reply.body["paths"]
    for path in ("/score", "/recommend", "/adapters", "/healthz", "/readyz", "/admin/promote"):
        assert path in paths
    assert "422" not in json.dumps(paths)
    assert "400" in paths["/score"]["post"]["responses"]
    score = reply.body["components"]["schemas"]["ScoreRequest"]
    assert score["additionalProperties"] is False
    assert {"user_id", "item_id", "item_ids", "history"} <= set(score["properties"])
