"""Choosing artifact stores: the one the trainer puts into, the ones a scorer fetches from.

:func:`open_artifact_store` builds the store ``LSAT_ARTIFACT_STORE`` names (``file`` or
``db``) on the registry's engine. :class:`ArtifactResolver` fetches any artifact URI through the
store of its scheme into one cache folder, whatever the reading process's own setting is, so a
scorer follows every version the registry records, old plain paths included.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from lsat.adapters.lifecycle.artifact_store import ArtifactStore, ArtifactStoreError, scheme_of
from lsat.adapters.lifecycle.artifact_store_db import DbArtifactStore
from lsat.adapters.lifecycle.artifact_store_file import FileArtifactStore
from lsat.adapters.lifecycle.registry import RegistryStore, SqlRegistryStore

__all__ = ["ARTIFACT_STORES", "ArtifactResolver", "open_artifact_store"]

ARTIFACT_STORES: tuple[str, ...] = ("file", "db")
"""The values ``LSAT_ARTIFACT_STORE`` accepts."""


def open_artifact_store(kind: str, engine: Engine | None = None) -> ArtifactStore:
    """The store named ``kind``; ``db`` keeps archives in ``engine``'s registry tables.

    >>> open_artifact_store("file").scheme
    'file'
    >>> open_artifact_store("s3")
    Traceback (most recent call last):
    ...
    lsat.adapters.lifecycle.artifact_store.ArtifactStoreError: unknown artifact store 's3'; \
expected one of ('file', 'db')
    """
    if kind == "file":
        return FileArtifactStore()
    if kind == "db":
        if engine is None:
            raise ArtifactStoreError("the db artifact store needs the registry's engine")
        return DbArtifactStore(engine)
    raise ArtifactStoreError(f"unknown artifact store {kind!r}; expected one of {ARTIFACT_STORES}")


class ArtifactResolver:
    """Fetches artifact URIs of any known scheme into ``cache_dir`` (verified, cached by sha).

    ``engine``: the registry database, for ``db://`` URIs (without it they are refused).
    """

    def __init__(self, cache_dir: Path, engine: Engine | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.stores: dict[str, ArtifactStore] = {"file": FileArtifactStore()}
        if engine is not None:
            self.stores["db"] = DbArtifactStore(engine)

    @classmethod
    def for_registry(cls, registry: RegistryStore, cache_dir: Path) -> ArtifactResolver:
        """A resolver that reads ``db://`` URIs from ``registry``'s database (a SQL registry)."""
        engine = registry.engine if isinstance(registry, SqlRegistryStore) else None
        return cls(cache_dir, engine)

    def fetch(self, uri: str, sha256: str) -> Path:
        """A verified local folder for ``uri`` (see :meth:`ArtifactStore.fetch`)."""
        scheme = scheme_of(uri)
        store = self.stores.get(scheme)
        if store is None:
            raise ArtifactStoreError(
                f"cannot fetch {uri!r}: no {scheme!r} artifact store here "
                f"(this process reads {sorted(self.stores)})"
            )
        return store.fetch(uri, sha256, self.cache_dir)
