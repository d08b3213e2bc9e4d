"""lsat/stream/close_window.py: the one client of the worker's close-window endpoint dials the
configured worker URL and presents the client token (a stdlib HTTP server plays the worker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from lsat.core.settings import Settings, StreamSettings
from lsat.stream.broker import free_port
from lsat.stream.close_window import CLOSE_WINDOW_PATH, CloseWindowFailed, request_close_window


class _Worker(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization")
        _Worker.seen.append((self.path, auth))
        status, body = (200, {"closed": [3], "open_window": 4})
        if auth != "Bearer s3cret":
            status, body = 403, {"error": "admin token rejected"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[str]:
    _Worker.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Worker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _settings(url: str, **tokens: str) -> Settings:
    # the bind address is a listen address: the client must not dial it
    return Settings(bind_host="0.0.0.0", stream=StreamSettings(worker_url=url), **tokens)


def test_dials_the_configured_url_with_the_client_token(worker_url: str) -> None:
    settings = _settings(worker_url, admin_token="other", client_token="s3cret")
    assert request_close_window(settings) == {"closed": [3], "open_window": 4}
    assert _Worker.seen == [(CLOSE_WINDOW_PATH, "Bearer s3cret")]


def test_falls_back_to_the_admin_token(worker_url: str) -> None:
    request_close_window(_settings(worker_url, admin_token="s3cret"))
    assert _Worker.seen == [(CLOSE_WINDOW_PATH, "Bearer s3cret")]


def test_a_refusal_names_the_url_and_status(worker_url: str) -> None:
    with pytest.raises(CloseWindowFailed, match="refused \\(403\\)") as failed:
        request_close_window(_settings(worker_url, admin_token="wrong"))
    assert failed.value.status == 403 and worker_url in str(failed.value)


def test_no_worker_answering() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CloseWindowFailed, match="no worker answering") as failed:
        request_close_window(_settings(url), timeout_s=5)
    assert failed.value.status is None
