"""The ``file`` artifact store: adapter folders stay where the trainer wrote them.

``put`` names the folder by its absolute ``file://`` URI; ``fetch`` returns that folder after
checking its weights sha256 (nothing is copied, ``cache_dir`` is unused). A plain path — what
the registry held before it recorded URIs — is read the same way. Every host that serves must
see the trainer's folder (one host, or a shared volume).

>>> store = FileArtifactStore()
>>> store.path_of("file:///srv/lsat/artifacts/short-w3"), store.path_of("a/b")
(PosixPath('/srv/lsat/artifacts/short-w3'), PosixPath('a/b'))
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from lsat.adapters.lifecycle.artifact_store import (
    ArtifactCorrupted,
    ArtifactLocation,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
)
from lsat.adapters.lifecycle.artifacts import WEIGHTS_FILE, sha256_file
from lsat.adapters.model.errors import AdapterIntegrityError

__all__ = ["FileArtifactStore"]


class FileArtifactStore(ArtifactStore):
    """Adapter folders on a local (or shared) filesystem."""

    scheme = "file"

    @staticmethod
    def path_of(uri: str) -> Path:
        """The local path a ``file://`` URI (or a plain path) names."""
        if "://" not in uri:
            return Path(uri)
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ArtifactStoreError(f"{uri!r} is not a local file URI (file:///absolute/path)")
        return Path(unquote(parts.path))

    def put(self, folder: Path) -> ArtifactLocation:
        folder = Path(folder).absolute()
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise AdapterIntegrityError(f"{weights} is missing: not an adapter folder")
        return ArtifactLocation(folder.as_uri(), sha256_file(weights))

    def fetch(self, uri: str, sha256: str, cache_dir: Path) -> Path:
        folder = self.path_of(uri)
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise ArtifactNotFound(f"{uri}: no adapter folder here ({weights} is missing)")
        actual = sha256_file(weights)
        if actual != sha256:
            raise ArtifactCorrupted(
                f"{uri}: its weights hash to {actual}, expected sha256 {sha256}"
            )
        return folder
