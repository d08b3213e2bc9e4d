"""Loaders: every format, error messages that name file/line/value, the shared datasets."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from lsat.data.errors import DataFormatError, LsatDataError
from lsat.data.loaders import detect_format, iter_items, load_dataset


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_text(text, encoding=encoding)
    return path


def test_csv_layout_labels_by_rating_and_sorts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "interactions.csv",
        "user_id,item_id,rating,timestamp,extra\n10,5,4,200,x\n9,5,3,200,y\n2,1,5,100,z\n",
    )
    write(tmp_path, "items.csv", "item_id,title,genres,year\n5,Heat,Crime|Drama,\n")
    ds = load_dataset(tmp_path)
    assert [(i.user_id, i.timestamp, i.label) for i in ds.interactions] == [
        ("2", 100, 1),
        ("9", 200, 0),  # 3 is not > 3; numeric ids sort numerically: 9 before 10
        ("10", 200, 1),
    ]
    assert ds.items["5"].title == "Heat"
    assert ds.items["5"].extra == {"genres": "Crime|Drama"}
    assert "1" not in ds.items  # referenced but not catalogued: kept out, interaction kept
    assert ds.name == tmp_path.name and ds.item_noun == "movie"


@pytest.mark.parametrize(("threshold", "labels"), [(3.0, [0, 1]), (3.5, [0, 1]), (4.0, [0, 0])])
def test_like_threshold(tmp_path: Path, threshold: float, labels: list[int]) -> None:
    write(tmp_path, "interactions.csv", "user_id,item_id,rating,timestamp\n1,1,3,1\n1,2,4,2\n")
    ds = load_dataset(tmp_path, like_threshold=threshold)
    assert [i.label for i in ds.interactions] == labels


def test_label_column_used_directly(tmp_path: Path) -> None:
    write(tmp_path, "interactions.csv", "user_id,item_id,label,timestamp\na,x,1,5\na,y,0,6\n")
    ds = load_dataset(tmp_path, item_noun="book")
    assert [(i.label, i.rating) for i in ds.interactions] == [(1, None), (0, None)]
    assert ds.item_noun == "book"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("user_id,item_id,rating,timestamp\n1,1,4,5\n1,2,four,6\n", 3, "bad rating 'four'"),
        ("user_id,item_id,rating,timestamp\n1,1,4,soon\n", 2, "bad timestamp 'soon'"),
        ("user_id,item_id,label,timestamp\n1,1,1,5\n1,1,1,6\n1,2,7,7\n", 4, "bad label '7'"),
        ("user_id,item_id,rating,timestamp\n1,1,4\n", 2, "has 3 fields"),
        ("user_id,item_id,rating,timestamp\n,1,4,5\n", 2, "bad user_id ''"),
        ("user_id,item_id,timestamp\n1,1,5\n", 1, "rating or label"),
        ("user,item_id,rating,timestamp\n1,1,4,5\n", 1, "missing column(s) ['user_id']"),
    ],
)
def test_csv_errors_name_file_line_value(tmp_path: Path, text: str, line: int, needle: str) -> None:
    write(tmp_path, "interactions.csv", text)
    with pytest.raises(DataFormatError) as caught:
        load_dataset(tmp_path)
    message = str(caught.value)
    assert f"interactions.csv:{line}:" in message and needle in message
    assert caught.value.line == line
    assert isinstance(caught.value, LsatDataError)


def test_duplicate_catalogue_item_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "interactions.csv", "user_id,item_id,rating,timestamp\n1,1,4,5\n")
    write(tmp_path, "items.csv", "item_id,title\n1,A\n1,B\n")
    with pytest.raises(DataFormatError, match=r"items.csv:3: bad item_id '1' \(duplicate"):
        load_dataset(tmp_path)


def test_movielens_100k_original(tmp_path: Path) -> None:
    write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t5\t891717742\n")
    flags = ["0"] * 19
    flags[8] = flags[5] = "1"
    item = "242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags) + "\n"
    write(
        tmp_path,
        "u.item",
        item + "302|Caf\xe9 (1997)|01-Jan-1997||u|" + "|".join(["0"] * 19),
        "latin-1",
    )
    ds = load_dataset(tmp_path)
    assert detect_format(tmp_path) == "ml-100k"
    assert [(i.user_id, i.item_id, i.label) for i in ds.interactions] == [
        ("196", "242", 0),
        ("186", "302", 1),
    ]
    assert ds.items["242"].extra == {"genres": "Comedy|Drama", "year": "1997"}
    assert ds.items["302"].title == "Café (1997)"


def test_movielens_100k_bad_row(tmp_path: Path) -> None:
    write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\n")
    with pytest.raises(DataFormatError, match=r"u.data:2: bad row '186\\t302'"):
        load_dataset(tmp_path)


def test_movielens_1m_original(tmp_path: Path) -> None:
    write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    write(
        tmp_path,
        "movies.dat",
        "1193::One Flew (1975)::Drama\n661::Pe\xf1a (1996)::A|B\n",
        "latin-1",
    )
    ds = load_dataset(tmp_path)
    assert detect_format(tmp_path) == "ml-1m"
    assert [(i.item_id, i.label) for i in ds.interactions] == [("1193", 1), ("661", 0)]
    assert ds.items["661"].title == "Peña (1996)"
    assert ds.items["661"].extra == {"genres": "A|B", "year": "1996"}


@pytest.mark.parametrize("gz", [False, True])
def test_amazon_reviews_and_metadata(tmp_path: Path, gz: bool) -> None:
    reviews = [
        {"reviewerID": "R1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000},
        {"reviewerID": "R2", "asin": "B2", "overall": 2.0, "unixReviewTime": 1300000000},
    ]
    review_text = "\n".join(json.dumps(r) for r in reviews) + "\n"
    # 2014 metadata is a Python literal, not JSON
    meta_text = "{'asin': 'B1', 'title': 'Dune', 'categories': ['Books', 'SF']}\n"
    meta_text += json.dumps({"asin": "B9", "price": 3}) + "\n"  # no title: skipped
    if gz:
        (tmp_path / "Books_5.json.gz").write_bytes(gzip.compress(review_text.encode()))
        (tmp_path / "meta_Books.json.gz").write_bytes(gzip.compress(meta_text.encode()))
    else:
        write(tmp_path, "reviews.json", review_text)
        write(tmp_path, "meta_Books.json", meta_text)
    ds = load_dataset(tmp_path)
    assert ds.item_noun == "product"
    assert [(i.user_id, i.label, i.rating) for i in ds.interactions] == [
        ("R2", 0, 2.0),
        ("R1", 1, 5.0),
    ]
    assert list(ds.items) == ["B1"]
    assert ds.items["B1"].extra == {"categories": "Books|SF"}


def test_amazon_bad_line(tmp_path: Path) -> None:
    good = json.dumps({"reviewerID": "R", "asin": "B", "overall": 4, "unixReviewTime": 1})
    write(tmp_path, "r.json", good + "\n{not json\n")
    with pytest.raises(DataFormatError, match=r"r.json:2: bad record '\{not json'"):
        load_dataset(tmp_path)


def test_recbole_atomic_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "ml.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t267\t4\t5.0\n",
    )
    write(
        tmp_path,
        "ml.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "267\tunkonwn\tunkonwn\tunknown\n",
    )
    ds = load_dataset(tmp_path)
    assert ds.interactions[0].timestamp == 5 and ds.interactions[0].label == 1
    assert ds.items["267"].title == "unknown"
    assert ds.items["267"].extra == {"genres": "unknown"}


def test_unknown_folder_and_missing_source(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "hello")
    with pytest.raises(LsatDataError, match="cannot tell the dataset format"):
        load_dataset(tmp_path)
    with pytest.raises(LsatDataError, match="'no-such-thing' is not a folder"):
        load_dataset("no-such-thing")


def test_iter_items_natural_order(tmp_path: Path) -> None:
    write(tmp_path, "interactions.csv", "user_id,item_id,rating,timestamp\n1,1,4,5\n")
    write(tmp_path, "items.csv", "item_id,title\n10,B\n9,A\n")
    assert [item.item_id for item in iter_items(load_dataset(tmp_path))] == ["9", "10"]


def test_shared_ml100k(ml100k_dir: Path) -> None:
    started = time.perf_counter()
    ds = load_dataset(ml100k_dir)
    elapsed = time.perf_counter() - started
    print(f"loaded ml-100k in {elapsed:.2f} s")
    assert len(ds.interactions) == 100_000 and len(ds.items) == 1_682
    assert len({i.user_id for i in ds.interactions}) == 943
    ratings = [i.rating for i in ds.interactions]
    assert sum(r == 4 for r in ratings) == 34_174
    assert sum(i.label for i in ds.interactions) == 34_174 + 21_201
    keys = [(i.timestamp, int(i.user_id), int(i.item_id)) for i in ds.interactions]
    assert keys == sorted(keys)
    assert ds.items["267"].title == "unknown"


def test_shared_ml1m_collm(ml1m_collm_dir: Path) -> None:
    ds = load_dataset(ml1m_collm_dir)
    assert len(ds.interactions) == 51_623 and len(ds.items) == 3_255
    assert all(i.rating is None for i in ds.interactions)
    assert round(sum(i.label for i in ds.interactions) / 51_623, 4) == 0.5363
    assert ds.items["1"].extra["ml1m_movie_id"] == "318"
