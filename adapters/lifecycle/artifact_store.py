"""Artifact stores: where adapter folders live so that any host can serve them.

A store has two operations. :meth:`ArtifactStore.put` takes an adapter folder written by
:func:`~lsat.adapters.lifecycle.artifacts.save_adapter` and returns its
:class:`ArtifactLocation` — a URI and the sha256 of its weights (what the registry records).
:meth:`ArtifactStore.fetch` gives back a local folder for a URI after checking it against the
expected weights sha256.

Backends (``LSAT_ARTIFACT_STORE``):

- ``file`` (:mod:`.artifact_store_file`, the default): the folder where the trainer wrote it,
  ``file:///…``; fetch returns that folder. Works on one host (or a shared volume).
- ``db`` (:mod:`.artifact_store_db`): the folder's canonical archive
  (:mod:`.artifact_archive`) in the ``adapter_artifacts`` table of the registry database,
  ``db://artifacts/<archive sha256>``. Scorers on other hosts fetch it through the database
  they already use.

Remote backends derive from :class:`ArchiveStore`: content-addressed by the archive's sha256,
fetched into ``cache_dir/<archive sha256>/``. A fetch checks the downloaded bytes against the
digest in the URI and the unpacked weights against the expected sha256 before the folder
enters the cache (staging folder + rename), so a mismatch raises :class:`ArtifactCorrupted` and
leaves nothing behind; a second fetch of a cached URI reads nothing from the backend.
"""

from __future__ import annotations

import abc
import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lsat.adapters.lifecycle.artifact_archive import archive_digest, pack, unpack
from lsat.adapters.lifecycle.artifacts import METADATA_FILE, WEIGHTS_FILE, sha256_file
from lsat.adapters.model.errors import AdapterArtifactError, AdapterIntegrityError

__all__ = [
    "ArchiveStore",
    "ArtifactCorrupted",
    "ArtifactLocation",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactStoreError",
    "scheme_of",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactStoreError(AdapterArtifactError):
    """A store that cannot put or fetch (unknown scheme, malformed URI, backend unreachable)."""


class ArtifactNotFound(ArtifactStoreError):
    """The URI names nothing in its store."""


class ArtifactCorrupted(AdapterIntegrityError):
    """Fetched bytes or files do not hash to what the URI and the registry say."""


@dataclass(frozen=True, slots=True)
class ArtifactLocation:
    """Where a stored adapter is (``uri``) and the sha256 of its weights file."""

    uri: str
    sha256: str


def scheme_of(uri: str) -> str:
    """The scheme of an artifact URI; a plain path (registry rows before URIs) is ``file``.

    >>> scheme_of("db://artifacts/ab"), scheme_of("/srv/a/short-3"), scheme_of("file:///a")
    ('db', 'file', 'file')
    """
    head, sep, _ = uri.partition("://")
    return head.lower() if sep and head.isalpha() else "file"


class ArtifactStore(abc.ABC):
    """Puts adapter folders somewhere and fetches them back, verified."""

    scheme: ClassVar[str]
    """The URI scheme this store answers (``file``, ``db``)."""

    @abc.abstractmethod
    def put(self, folder: Path) -> ArtifactLocation:
        """Store the adapter folder ``folder``; its URI and weights sha256."""

    @abc.abstractmethod
    def fetch(self, uri: str, sha256: str, cache_dir: Path) -> Path:
        """A local folder holding the adapter at ``uri``, whose weights hash to ``sha256``.

        Raises :class:`ArtifactCorrupted` on a mismatch, :class:`ArtifactNotFound` when the URI
        names nothing, :class:`ArtifactStoreError` when the store cannot be read.
        """

    def put_expecting(self, folder: Path, sha256: str) -> ArtifactLocation:
        """:meth:`put`, refusing a folder whose weights do not hash to ``sha256``."""
        location = self.put(folder)
        if location.sha256 != sha256:
            raise ArtifactCorrupted(
                f"{folder}: its weights hash to {location.sha256}, not the sha256 {sha256} given"
            )
        return location

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release what the store holds (nothing by default)."""


class ArchiveStore(ArtifactStore):
    """A store of canonical archives keyed by their sha256, fetched into a local cache.

    Subclasses move bytes: :meth:`_upload` (idempotent for a digest already stored) and
    :meth:`_download`. URIs are ``<scheme>://artifacts/<archive sha256>``.
    """

    @abc.abstractmethod
    def _upload(self, digest: str, weights_sha256: str, data: bytes) -> None:
        """Keep ``data`` under ``digest`` (a no-op when it is already there)."""

    @abc.abstractmethod
    def _download(self, digest: str) -> bytes:
        """The bytes kept under ``digest``; :class:`ArtifactNotFound` when none."""

    def uri_for(self, digest: str) -> str:
        """The URI of the archive with sha256 ``digest``."""
        return f"{self.scheme}://artifacts/{digest}"

    def digest_of(self, uri: str) -> str:
        """The archive sha256 a URI of this store names; :class:`ArtifactStoreError` if none."""
        prefix = f"{self.scheme}://artifacts/"
        digest = uri[len(prefix) :] if uri.startswith(prefix) else ""
        if not _SHA256.match(digest):
            raise ArtifactStoreError(f"{uri!r} is not a {self.scheme} artifact URI ({prefix}<sha>)")
        return digest

    def put(self, folder: Path) -> ArtifactLocation:
        folder = Path(folder)
        data = pack(folder)
        weights_sha256 = sha256_file(folder / WEIGHTS_FILE)
        digest = archive_digest(data)
        self._upload(digest, weights_sha256, data)
        return ArtifactLocation(self.uri_for(digest), weights_sha256)

    def fetch(self, uri: str, sha256: str, cache_dir: Path) -> Path:
        digest = self.digest_of(uri)
        target = Path(cache_dir) / digest
        if target.is_dir():
            _check_recorded(target, sha256, uri)
            return target
        data = self._download(digest)
        actual = archive_digest(data)
        if actual != digest:
            raise ArtifactCorrupted(
                f"{uri}: the stored archive hashes to {actual}, not to the digest its URI names"
            )
        staging = Path(cache_dir) / f".{digest}.{uuid.uuid4().hex}.partial"
        try:
            unpack(data, staging)
            weights = sha256_file(staging / WEIGHTS_FILE)
            if weights != sha256:
                raise ArtifactCorrupted(
                    f"{uri}: its weights hash to {weights}, expected sha256 {sha256}"
                )
            _check_recorded(staging, sha256, uri)
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # not a concurrent fetch of the same archive
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def _check_recorded(folder: Path, sha256: str, uri: str) -> None:
    """The weights sha256 that ``metadata.json`` records must be the expected one."""
    try:
        recorded = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise ArtifactCorrupted(f"{uri}: unreadable {METADATA_FILE} ({exc})") from None
    if recorded != sha256:
        raise ArtifactCorrupted(
            f"{uri}: {METADATA_FILE} records weights sha256 {recorded}, expected {sha256}"
        )
