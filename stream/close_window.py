"""The worker's close-window endpoint: its path and the one client that calls it.

``lsat retrain --now`` and the scorer's ``POST /admin/retrain`` both call
:func:`request_close_window`. The client dials the worker's configured URL
(:attr:`~lsat.core.settings.StreamSettings.worker_base_url`: ``LSAT_WORKER_URL``, else loopback),
never the worker's bind address, and presents the client token (``LSAT_CLIENT_TOKEN``, else
``LSAT_ADMIN_TOKEN``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from lsat.core.settings import Settings
from lsat.stream.errors import StreamError

__all__ = ["CLOSE_WINDOW_PATH", "CloseWindowFailed", "request_close_window"]

CLOSE_WINDOW_PATH = "/lsat/windows/close"


class CloseWindowFailed(StreamError):
    """The worker refused (``status`` set) or did not answer (``status`` is ``None``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def request_close_window(
    settings: Settings, *, base_url: str | None = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """POST to the worker's close-window endpoint; its answer (``closed``, ``open_window``).

    ``base_url`` overrides the configured worker URL (e.g. ``http://127.0.0.1:6066``).
    """
    url = (base_url or settings.stream.worker_base_url).rstrip("/") + CLOSE_WINDOW_PATH
    request = urllib.request.Request(url, data=b"{}", method="POST")
    token = settings.presented_token
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        message = f"worker at {url} refused ({exc.code}): {detail}"
        raise CloseWindowFailed(message, exc.code) from None
    except urllib.error.URLError as exc:
        raise CloseWindowFailed(f"no worker answering at {url}: {exc.reason}") from None
