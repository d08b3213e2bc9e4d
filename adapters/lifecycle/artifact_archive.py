"""The canonical archive of an adapter folder: the bytes a shared artifact store keeps.

An uncompressed POSIX (ustar) tar of exactly the three files of an adapter folder
(:data:`ARCHIVE_FILES`: ``adapter_config.json``, ``adapter_model.safetensors``,
``metadata.json``), in that order, every header normalised (mode 0644, owner 0, mtime 0, no
user names). The same folder content always packs to the same bytes, so the archive's sha256
(:func:`archive_digest`) names the whole folder, metadata included, and a store can be
content-addressed by it.

:func:`unpack` writes an archive into an empty folder and accepts nothing but those three
regular files once each (no links, no paths, no other names), so an archive from the store can
never write outside its folder.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     folder = Path(tmp) / "a"
...     folder.mkdir()
...     for name in ARCHIVE_FILES:
...         _ = (folder / name).write_bytes(name.encode())
...     data = pack(folder)
...     unpack(data, Path(tmp) / "b")
...     sorted(p.name for p in (Path(tmp) / "b").iterdir()), pack(Path(tmp) / "b") == data
(['adapter_config.json', 'adapter_model.safetensors', 'metadata.json'], True)
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from lsat.adapters.lifecycle.artifacts import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE
from lsat.adapters.model.errors import AdapterIntegrityError

__all__ = ["ARCHIVE_FILES", "archive_digest", "pack", "unpack"]

ARCHIVE_FILES: tuple[str, ...] = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
"""The files of an adapter folder an archive holds, in archive order."""


def archive_digest(data: bytes) -> str:
    """Hex sha256 of archive bytes (the name a content-addressed store gives them)."""
    return hashlib.sha256(data).hexdigest()


def pack(folder: Path) -> bytes:
    """The canonical archive of ``folder``; :class:`AdapterIntegrityError` when a file is
    missing (other files in the folder are left out)."""
    folder = Path(folder)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ARCHIVE_FILES:
            path = folder / name
            if not path.is_file():
                raise AdapterIntegrityError(f"{path} is missing: not a complete adapter folder")
            content = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def unpack(data: bytes, target: Path) -> None:
    """Write the archive ``data`` into the new folder ``target`` (created; must not exist).

    Raises :class:`AdapterIntegrityError` for anything but the three adapter files as regular
    files, each once; ``target`` may then hold part of them (callers unpack into staging).
    """
    target = Path(target)
    target.mkdir(parents=True)
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if member.name not in ARCHIVE_FILES or not member.isreg():
                    raise AdapterIntegrityError(
                        f"adapter archive holds {member.name!r} ({_kind(member)}); "
                        f"only the regular files {list(ARCHIVE_FILES)} are accepted"
                    )
                if member.name in seen:
                    raise AdapterIntegrityError(f"adapter archive holds {member.name!r} twice")
                seen.add(member.name)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - isreg() members always have data
                    raise AdapterIntegrityError(f"adapter archive: no data for {member.name!r}")
                _write(target / member.name, source.read())
    except (tarfile.TarError, EOFError) as exc:
        raise AdapterIntegrityError(f"not a readable adapter archive: {exc}") from None
    missing = [name for name in ARCHIVE_FILES if name not in seen]
    if missing:
        raise AdapterIntegrityError(f"adapter archive lacks {missing}")


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "a file"
    if member.isdir():
        return "a folder"
    return "a link" if member.issym() or member.islnk() else "a special file"


def _write(path: Path, content: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
