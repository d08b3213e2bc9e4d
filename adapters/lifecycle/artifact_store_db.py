"""The ``db`` artifact store: adapter archives in the registry database.

Each adapter folder's canonical archive (:mod:`.artifact_archive`, a few MB for a LoRA) is a row
of ``adapter_artifacts`` (migration ``0003_artifact_store``), keyed by its sha256 and written
once; its URI is ``db://artifacts/<archive sha256>``. Any process that reaches the registry's
database (``LSAT_DATABASE_URL``, SQLite or PostgreSQL) can fetch it, so scorers on other hosts
need no shared folder. Database errors surface as :class:`ArtifactStoreError`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Select, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from lsat.adapters.lifecycle.artifact_store import (
    ArchiveStore,
    ArtifactNotFound,
    ArtifactStoreError,
)
from lsat.adapters.lifecycle.registry.models import AdapterArtifactRow, utc_now
from lsat.core.db import READ_ONLY_OPTION

__all__ = ["DbArtifactStore"]


class DbArtifactStore(ArchiveStore):
    """Archives in the ``adapter_artifacts`` table of a registry database at head.

    ``engine`` is shared (usually the registry's own); :meth:`close` leaves it open.
    """

    scheme = "db"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _upload(self, digest: str, weights_sha256: str, data: bytes) -> None:
        row = AdapterArtifactRow(
            digest=digest,
            weights_sha256=weights_sha256,
            size=len(data),
            content=data,
            created_at=utc_now(),
        )
        try:
            with Session(self.engine) as session, session.begin():
                if session.get(AdapterArtifactRow, digest) is None:
                    session.add(row)
        except IntegrityError:  # the same archive, stored by a concurrent writer
            if not self._exists(digest):
                raise ArtifactStoreError(f"could not store archive {digest}") from None
        except SQLAlchemyError as exc:
            raise ArtifactStoreError(f"could not store archive {digest}: {exc}") from None

    def _exists(self, digest: str) -> bool:
        return self._read(select(AdapterArtifactRow.digest), digest) is not None

    def _download(self, digest: str) -> bytes:
        try:
            content = self._read(select(AdapterArtifactRow.content), digest)
        except SQLAlchemyError as exc:
            raise ArtifactStoreError(f"could not read archive {digest}: {exc}") from None
        if content is None:
            raise ArtifactNotFound(f"{self.uri_for(digest)}: no such archive in the database")
        return bytes(content)

    def _read(self, query: Select[tuple[Any]], digest: str) -> Any:
        """One column of the row ``digest`` (``None`` when absent), in a read-only transaction."""
        with self.engine.connect().execution_options(**{READ_ONLY_OPTION: True}) as connection:
            return connection.execute(query.where(AdapterArtifactRow.digest == digest)).scalar()
