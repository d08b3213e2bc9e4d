"""Load a dataset folder (any supported format) into a :class:`~lsat.data.types.Dataset`.

Formats are detected from the files in the folder:

==================  ==========================================  ==========
format              files                                       item noun
==================  ==========================================  ==========
``csv``             ``interactions.csv`` [+ ``items.csv``]      movie
``ml-100k``         ``u.data`` [+ ``u.item``]                   movie
``ml-1m``           ``ratings.dat`` [+ ``movies.dat``]          movie
``recbole``         ``<name>.inter`` [+ ``<name>.item``]        movie
``amazon``          review ``*.json[.gz]`` [+ ``meta_*.json[.gz]``]  product
==================  ==========================================  ==========

The source ``"ml-100k"`` (a name, not an existing path) is fetched into ``cache_dir`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lsat.data.errors import DataFormatError, LsatDataError
from lsat.data.formats import amazon, csv_layout, movielens, recbole
from lsat.data.formats.fields import natural_key, sort_interactions
from lsat.data.types import Dataset, Interaction, Item

__all__ = [
    "DataFormatError",
    "LsatDataError",
    "detect_format",
    "iter_items",
    "load_dataset",
]

FETCHABLE = ("ml-100k",)
"""Dataset names that :func:`load_dataset` downloads when given instead of a path."""


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which files of a folder hold interactions and items, and how to read them."""

    name: str
    interactions: Path
    items: Path | None
    read_interactions: Callable[..., list[Interaction]]
    read_items: Callable[[Path], dict[str, Item]]
    item_noun: str = "movie"


def _first(folder: Path, *names: str) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _detect(folder: Path) -> _Layout:
    if (folder / csv_layout.INTERACTIONS_FILE).is_file():
        return _Layout(
            "csv",
            folder / csv_layout.INTERACTIONS_FILE,
            _first(folder, csv_layout.ITEMS_FILE),
            csv_layout.read_csv_interactions,
            csv_layout.read_csv_items,
        )
    if (folder / "u.data").is_file():
        return _Layout(
            "ml-100k",
            folder / "u.data",
            _first(folder, "u.item"),
            movielens.read_ml100k_interactions,
            movielens.read_ml100k_items,
        )
    if (folder / "ratings.dat").is_file():
        return _Layout(
            "ml-1m",
            folder / "ratings.dat",
            _first(folder, "movies.dat"),
            movielens.read_ml1m_interactions,
            movielens.read_ml1m_items,
        )
    inter = sorted(folder.glob("*.inter"))
    if inter:
        item_file = inter[0].with_suffix(".item")
        return _Layout(
            "recbole",
            inter[0],
            item_file if item_file.is_file() else None,
            recbole.read_recbole_interactions,
            recbole.read_recbole_items,
        )
    dumps = sorted(p for p in folder.iterdir() if p.is_file() and amazon.is_amazon_file(p))
    reviews = [p for p in dumps if not amazon.is_metadata_file(p)]
    meta = [p for p in dumps if amazon.is_metadata_file(p)]
    if len(reviews) == 1:
        return _Layout(
            "amazon",
            reviews[0],
            meta[0] if meta else None,
            amazon.read_amazon_reviews,
            amazon.read_amazon_items,
            item_noun="product",
        )
    found = sorted(p.name for p in folder.iterdir())[:20]
    raise LsatDataError(
        f"cannot tell the dataset format of {folder}: expected interactions.csv, u.data, "
        f"ratings.dat, *.inter or one Amazon review *.json[.gz]; found {found}"
    )


def detect_format(folder: str | Path) -> str:
    """The name of the format of a dataset folder (``csv``, ``ml-100k``, ``ml-1m``, ...).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "u.data").write_text("1\\t2\\t5\\t881250949\\n")
    ...     detect_format(tmp)
    'ml-100k'
    """
    return _detect(Path(folder)).name


def load_dataset(
    source: str | Path,
    *,
    like_threshold: float = 3.0,
    item_noun: str | None = None,
    cache_dir: Path | None = None,
) -> Dataset:
    """Read a dataset folder (or fetch ``"ml-100k"``) into a time-sorted :class:`Dataset`.

    ``label`` is the file's 0/1 label column when it has one, else ``rating > like_threshold``.
    Items that interactions reference but the catalogue lacks are simply absent from
    ``Dataset.items`` (prompts fall back to the item id). Malformed rows raise
    :class:`DataFormatError` naming the file, line and value.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "interactions.csv").write_text(
    ...         "user_id,item_id,rating,timestamp\\n1,7,4,20\\n1,8,2,10\\n")
    ...     ds = load_dataset(tmp)
    >>> [(i.item_id, i.label) for i in ds.interactions], ds.item_noun
    ([('8', 0), ('7', 1)], 'movie')
    """
    folder = Path(source)
    if not folder.exists() and str(source) in FETCHABLE:
        from lsat.data.fetch import fetch_movielens_100k

        folder = fetch_movielens_100k(cache_dir or Path(".lsat/cache"))
        name = str(source)
    else:
        name = folder.name
    if not folder.is_dir():
        raise LsatDataError(
            f"dataset source {str(source)!r} is not a folder (or one of {list(FETCHABLE)})"
        )
    layout = _detect(folder)
    interactions = layout.read_interactions(layout.interactions, like_threshold=like_threshold)
    items = layout.read_items(layout.items) if layout.items else {}
    return Dataset(
        name=name,
        interactions=sort_interactions(interactions),
        items=items,
        item_noun=item_noun or layout.item_noun,
    )


def iter_items(dataset: Dataset) -> Iterator[Item]:
    """Catalogue items in natural id order (for publishing the catalogue to a topic)."""
    for item_id in sorted(dataset.items, key=natural_key):
        yield dataset.items[item_id]
