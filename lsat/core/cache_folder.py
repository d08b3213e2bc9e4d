"""Build a shared cache folder once, even when several processes ask for it at the same time.

The first run of ``lsat up`` starts the scorer and the long-adapter trainer together; both find
no converted base model and both would build it. :func:`build_once` serialises the builders with
an exclusive ``fcntl`` lock on a sibling lock file: the first process builds into a private
staging folder and renames it into place; every later one, once it gets the lock, finds the
folder complete and reuses it. A crash while building leaves only a staging folder (removed) and
an unlocked lock file, so the next caller simply builds again.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> calls = []
>>> def build(staging: Path) -> None:
...     calls.append(staging.name)
...     (staging / "done").write_text("ok")
>>> is_done = lambda folder: (folder / "done").is_file()
>>> first = build_once(root / "model", build, is_complete=is_done)
>>> second = build_once(root / "model", build, is_complete=is_done)
>>> first == second == root / "model", len(calls)
(True, 1)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["build_once", "folder_lock"]


@contextmanager
def folder_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock for ``target`` (a sibling ``.NAME.lock`` file) while inside.

    The lock is released by the kernel if the holder dies, so a crash never leaves it stuck.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def build_once(
    target: Path,
    build: Callable[[Path], None],
    *,
    is_complete: Callable[[Path], bool],
) -> Path:
    """Return ``target``, calling ``build(staging)`` first if no complete copy exists yet.

    ``build`` fills an empty staging folder next to ``target``; it is renamed into place only
    after ``build`` returns. An incomplete leftover at ``target`` (an interrupted older layout)
    is replaced.
    """
    target = Path(target)
    if is_complete(target):
        return target
    with folder_lock(target):
        if is_complete(target):  # another process built it while we waited for the lock
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target
