"""Artifact stores: put / fetch round trips (file, and db on SQLite and PostgreSQL), the cache,
corrupted bytes refused with nothing cached, and registry rows that record the URI."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from alembic import command
from artifact_cases import flip_stored_byte, saved_adapter, stored_digests
from sqlalchemy import event, text

from lsat.adapters.lifecycle.artifact_archive import ARCHIVE_FILES, pack, unpack
from lsat.adapters.lifecycle.artifact_store import ArtifactCorrupted, ArtifactNotFound
from lsat.adapters.lifecycle.artifact_store_file import FileArtifactStore
from lsat.adapters.lifecycle.artifact_stores import ArtifactResolver
from lsat.adapters.lifecycle.artifacts import load_adapter
from lsat.adapters.lifecycle.publication import AdapterRef, PublicationError, ServingSet
from lsat.adapters.lifecycle.registry import SqlRegistryStore, open_registry
from lsat.adapters.lifecycle.registry.engine import REGISTRY_MIGRATIONS
from lsat.adapters.model.errors import AdapterIntegrityError
from lsat.core.db import create_db_engine


@pytest.fixture
def db_registry(db_url: str) -> Iterator[SqlRegistryStore]:
    """A registry (SQLite file, then a fresh PostgreSQL database) with the ``db`` store."""
    registry = open_registry(db_url, artifact_store="db")
    yield registry
    registry.close()


def cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def same_weights(left: Path, right: Path) -> bool:
    a, b = load_adapter(left).state, load_adapter(right).state
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_file_store_names_the_folder_and_fetches_it_verified(tmp_path: Path) -> None:
    folder, sha = saved_adapter(tmp_path / "artifacts" / "short w1", 1)
    store = FileArtifactStore()
    location = store.put(folder)
    assert location.uri == folder.absolute().as_uri() and location.uri.startswith("file:///")
    assert location.sha256 == sha
    assert store.fetch(location.uri, sha, tmp_path / "cache") == folder
    assert store.fetch(str(folder), sha, tmp_path / "cache") == folder  # a pre-URI plain path
    with pytest.raises(ArtifactCorrupted, match="expected sha256"):
        store.fetch(location.uri, "0" * 64, tmp_path / "cache")
    with pytest.raises(ArtifactNotFound):
        store.fetch((tmp_path / "gone").as_uri(), sha, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # the file store copies nothing


def test_db_store_round_trip_records_the_uri_and_fetches_into_the_cache(
    db_registry: SqlRegistryStore, tmp_path: Path
) -> None:
    folder, sha = saved_adapter(tmp_path / "trainer" / "short-1", 1)
    version = db_registry.register("short", path=folder, sha256=sha, window_id=1)
    assert version.uri is not None and version.uri.startswith("db://artifacts/")
    digest = version.uri.rsplit("/", 1)[1]
    assert db_registry.get("short", 1).uri == version.uri
    assert stored_digests(db_registry.engine) == [digest]

    ref = AdapterRef.of(version)
    assert ref.location == version.uri
    resolver = ArtifactResolver.for_registry(db_registry, tmp_path / "scorer-cache")
    fetched = resolver.fetch(ref.location, ref.sha256)
    assert fetched == tmp_path / "scorer-cache" / digest
    assert sorted(p.name for p in fetched.iterdir()) == sorted(ARCHIVE_FILES)
    for name in ARCHIVE_FILES:
        assert (fetched / name).read_bytes() == (folder / name).read_bytes()
    assert same_weights(fetched, folder)
    assert load_adapter(fetched, expected_sha256=sha).metadata["window"] == 1


def test_a_second_fetch_reads_nothing_from_the_database(
    db_registry: SqlRegistryStore, tmp_path: Path
) -> None:
    folder, sha = saved_adapter(tmp_path / "short-2", 2)
    uri = db_registry.register("short", path=folder, sha256=sha).location
    resolver = ArtifactResolver.for_registry(db_registry, tmp_path / "cache")
    statements: list[str] = []
    event.listen(
        db_registry.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    first = resolver.fetch(uri, sha)
    reads = len(statements)
    assert reads >= 1
    assert resolver.fetch(uri, sha) == first
    assert len(statements) == reads  # served from the cache
    with pytest.raises(ArtifactCorrupted, match="records weights sha256"):
        resolver.fetch(uri, "f" * 64)  # a cached folder is not handed out under another sha


def test_a_flipped_byte_in_the_database_is_refused_and_nothing_is_cached(
    db_registry: SqlRegistryStore, tmp_path: Path
) -> None:
    folder, sha = saved_adapter(tmp_path / "short-3", 3)
    uri = db_registry.register("short", path=folder, sha256=sha).location
    flip_stored_byte(db_registry.engine, uri.rsplit("/", 1)[1])
    cache = tmp_path / "cache"
    resolver = ArtifactResolver.for_registry(db_registry, cache)
    with pytest.raises(ArtifactCorrupted, match="hashes to"):
        resolver.fetch(uri, sha)
    assert cache_entries(cache) == []


def test_weights_other_than_the_registry_sha_are_refused_and_nothing_is_cached(
    db_registry: SqlRegistryStore, tmp_path: Path
) -> None:
    folder, sha = saved_adapter(tmp_path / "short-4", 4)
    uri = db_registry.register("short", path=folder, sha256=sha).location
    cache = tmp_path / "cache"
    with pytest.raises(ArtifactCorrupted, match="expected sha256"):
        ArtifactResolver.for_registry(db_registry, cache).fetch(uri, "e" * 64)
    assert cache_entries(cache) == []
    with pytest.raises(ArtifactNotFound):
        ArtifactResolver.for_registry(db_registry, cache).fetch(f"db://artifacts/{'d' * 64}", sha)


def test_register_refuses_a_folder_whose_weights_are_not_the_given_sha(
    db_registry: SqlRegistryStore, tmp_path: Path
) -> None:
    folder, _ = saved_adapter(tmp_path / "short-5", 5)
    with pytest.raises(ArtifactCorrupted, match="not the sha256"):
        db_registry.register("short", path=folder, sha256="a" * 64)
    assert db_registry.list() == []
    rejected = db_registry.register(
        "short", path=tmp_path / "never-written", sha256="a" * 64, status="rejected",
        status_reason="refused by the trainer",
    )  # fmt: skip
    assert rejected.uri is None  # a rejected version is recorded, never uploaded


def test_the_same_folder_packs_to_the_same_bytes_and_is_stored_once(
    db_registry: SqlRegistryStore, tmp_path: Path
) -> None:
    folder, sha = saved_adapter(tmp_path / "short-6", 6)
    assert pack(folder) == pack(folder)
    first = db_registry.register("short", path=folder, sha256=sha)
    second = db_registry.register("short", path=folder, sha256=sha)
    assert (first.version, second.version) == (1, 2) and first.uri == second.uri
    assert len(stored_digests(db_registry.engine)) == 1


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, content in entries:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (tarfile.TarInfo("../metadata.json"), "only the regular files"),
        (tarfile.TarInfo("x/adapter_config.json"), "only the regular files"),
        (tarfile.TarInfo("metadata.json"), "twice"),
    ],
)
def test_unpack_accepts_only_the_three_adapter_files(
    tmp_path: Path, entry: tarfile.TarInfo, message: str
) -> None:
    folder, _ = saved_adapter(tmp_path / "a", 7)
    entries = [(tarfile.TarInfo(name), (folder / name).read_bytes()) for name in ARCHIVE_FILES]
    with pytest.raises(AdapterIntegrityError, match=message):
        unpack(_tar([*entries, (entry, b"{}")]), tmp_path / "out")
    assert not (tmp_path.parent / "metadata.json").exists()
    link = tarfile.TarInfo("adapter_model.safetensors")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(AdapterIntegrityError, match="a link"):
        unpack(_tar([entries[0], (link, b"")]), tmp_path / "out2")
    with pytest.raises(AdapterIntegrityError, match="lacks"):
        unpack(_tar(entries[:2]), tmp_path / "out3")
    with pytest.raises(AdapterIntegrityError, match="not a readable"):
        unpack(b"not a tar at all" * 64, tmp_path / "out4")


def test_rows_from_before_uris_still_serve_from_their_path(db_url: str, tmp_path: Path) -> None:
    folder, sha = saved_adapter(tmp_path / "old-short", 8)
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as connection:
            command.upgrade(REGISTRY_MIGRATIONS.config(connection), "0002_window_scores")
            connection.execute(
                text(
                    "INSERT INTO adapter_versions (kind, version, status, window_ids, parents, "
                    "metrics, sha256, path, created_at) VALUES ('short', 1, 'candidate', '[]', "
                    "'[]', '{}', :sha, :path, CURRENT_TIMESTAMP)"
                ),
                {"sha": sha, "path": str(folder)},
            )
    finally:
        engine.dispose()
    with open_registry(db_url, artifact_store="db") as registry:
        old = registry.get("short", 1)
        assert old.uri is None and old.location == str(folder)
        fetched = ArtifactResolver.for_registry(registry, tmp_path / "cache").fetch(
            AdapterRef.of(old).location, sha
        )
        assert fetched == folder


def test_serving_set_messages_carry_the_uri_and_older_messages_still_parse() -> None:
    ref = AdapterRef("short", 2, "/trainer/short-2", "b" * 64, f"db://artifacts/{'c' * 64}")
    message = ServingSet(
        long=None, short=ref, merged=None, alpha=0.0, merge_weight=None, window_id=2,
        published_s=1.0,
    )  # fmt: skip
    assert ServingSet.from_json(message.to_json()).short == ref
    older = json.loads(message.to_json())
    del older["short"]["uri"]  # what a trainer from before artifact stores sends
    parsed = ServingSet.from_json(json.dumps(older)).short
    assert parsed is not None and parsed.uri is None and parsed.location == "/trainer/short-2"
    older["short"]["uri"] = "short-2"
    with pytest.raises(PublicationError, match=r"short\.uri="):
        ServingSet.from_json(json.dumps(older))
