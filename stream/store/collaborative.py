"""Like counts per user and item in the stream store, kept exactly once with the interactions.

The tables ``user_like_counts``, ``item_like_counts`` and ``like_count_totals`` (one row,
``"global"``) always equal the counts over ``stream_interactions``: every batch that inserts new
interactions adds their likes and counts (:func:`add_like_counts`, one upsert per table, in the
batch's transaction), so a re-delivered event, which is never inserted again, is never counted
again, and a batch that rolls back leaves the counts as they were. A store created before the
tables existed is backfilled from its interactions once (:func:`backfill_like_counts`).

The worker keeps the same counts in memory as a
:class:`~lsat.data.collaborative.CollaborativeCounts` (rebuilt with :func:`load_like_counts` on
start and after a failed batch) and writes each sample's features as of just before its event
into the sample row
(:func:`sample_feature_values`, read back by :func:`features_of`). The stream does not keep the
co-like score (its pair state is large): stored and live features carry ``co_like = 0.0``.

>>> from lsat.data.types import CollaborativeFeatures
>>> values = sample_feature_values(CollaborativeFeatures(1, 2, 3, 4, 5, 6))
>>> values["item_likes_before"], features_of(values) == CollaborativeFeatures(1, 2, 3, 4, 5, 6)
(3, True)
>>> sample_feature_values(None)["user_count_before"] is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, literal, select, union_all
from sqlalchemy.orm import Session

from lsat.data.collaborative import CollaborativeCounts
from lsat.data.types import CollaborativeFeatures, Interaction, Sample
from lsat.stream.store.bulk import BulkInsert
from lsat.stream.store.history import user_history
from lsat.stream.store.membership import member_of
from lsat.stream.store.models import (
    InteractionRow,
    ItemLikeCountRow,
    LikeCountTotalRow,
    UserLikeCountRow,
)

__all__ = [
    "GLOBAL",
    "SAMPLE_FEATURE_COLUMNS",
    "add_like_counts",
    "backfill_like_counts",
    "candidate_samples",
    "features_now",
    "features_of",
    "like_counts_kept",
    "like_counts_of",
    "like_deltas",
    "load_like_counts",
    "sample_feature_values",
]

GLOBAL = "global"
"""The name of the one ``like_count_totals`` row."""

SAMPLE_FEATURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("user_likes_before", "user_likes"),
    ("user_count_before", "user_count"),
    ("item_likes_before", "item_likes"),
    ("item_count_before", "item_count"),
    ("global_likes_before", "global_likes"),
    ("global_count_before", "global_count"),
)
"""(sample row column, :class:`CollaborativeFeatures` field) pairs."""

USERS = cast(Table, UserLikeCountRow.__table__)
ITEMS = cast(Table, ItemLikeCountRow.__table__)
TOTALS = cast(Table, LikeCountTotalRow.__table__)
INTERACTIONS = cast(Table, InteractionRow.__table__)
_COLUMNS = tuple(column for column, _ in SAMPLE_FEATURE_COLUMNS)

Insert = Callable[[Table], Any]
"""The dialect's ``insert`` (``sqlalchemy.dialects.sqlite.insert`` or the PostgreSQL one)."""


def sample_feature_values(features: CollaborativeFeatures | None) -> dict[str, int | None]:
    """The sample row's feature columns for ``features`` (all ``None`` without features)."""
    if features is None:
        return dict.fromkeys(_COLUMNS)
    f = features
    values = (f.user_likes, f.user_count, f.item_likes, f.item_count, f.global_likes)
    return dict(zip(_COLUMNS, (*values, f.global_count), strict=True))


def features_of(row: Any) -> CollaborativeFeatures | None:
    """The features stored in a sample row (or mapping), ``None`` when it has none."""
    get = row.get if isinstance(row, Mapping) else lambda column: getattr(row, column)
    values = [int(v) for column, _ in SAMPLE_FEATURE_COLUMNS if (v := get(column)) is not None]
    if len(values) < len(SAMPLE_FEATURE_COLUMNS):
        return None
    return CollaborativeFeatures(*values)


def like_deltas(
    interactions: Iterable[Interaction],
) -> tuple[dict[str, list[int]], dict[str, list[int]], list[int]]:
    """Per user and per item ``[likes, count]`` added by ``interactions``, and the total.

    >>> users, items, total = like_deltas(
    ...     [Interaction("u", "a", 1, 1), Interaction("u", "b", 2, 0), Interaction("v", "a", 3, 1)]
    ... )
    >>> users, items, total
    ({'u': [1, 2], 'v': [1, 1]}, {'a': [2, 2], 'b': [0, 1]}, [2, 3])
    """
    users: dict[str, list[int]] = {}
    items: dict[str, list[int]] = {}
    total = [0, 0]
    for it in interactions:
        label = int(it.label)
        for table, key in ((users, it.user_id), (items, it.item_id)):
            entry = table.setdefault(key, [0, 0])
            entry[0] += label
            entry[1] += 1
        total[0] += label
        total[1] += 1
    return users, items, total


_UPSERTS: dict[tuple[Insert, str], BulkInsert] = {}


def _upsert(session: Session, insert: Insert, table: Table, key: str, rows: list[tuple]) -> None:
    """Add ``likes``/``count`` to each keyed row, creating missing ones (one bulk statement)."""
    upsert = _UPSERTS.get((insert, table.name))
    if upsert is None:  # built once per dialect and table
        columns = (key, "likes", "count")
        upsert = BulkInsert(table, columns, (), key, insert, accumulate=("likes", "count"))
        _UPSERTS[(insert, table.name)] = upsert
    upsert.execute(session.connection(), rows)


def add_like_counts(session: Session, insert: Insert, interactions: Sequence[Interaction]) -> None:
    """Count newly inserted ``interactions`` into the three tables, in ``session``'s
    transaction. Call it only with interactions inserted by that same transaction."""
    if not interactions:
        return
    users, items, total = like_deltas(interactions)
    user_rows = [(k, v[0], v[1]) for k, v in sorted(users.items())]
    item_rows = [(k, v[0], v[1]) for k, v in sorted(items.items())]
    _upsert(session, insert, USERS, "user_id", user_rows)
    _upsert(session, insert, ITEMS, "item_id", item_rows)
    _upsert(session, insert, TOTALS, "name", [(GLOBAL, total[0], total[1])])


def like_counts_kept(session: Session) -> bool:
    """Whether the store keeps like counts already (its totals row exists)."""
    return session.get(LikeCountTotalRow, GLOBAL) is not None


def backfill_like_counts(session: Session, insert: Insert) -> bool:
    """Fill the count tables from ``stream_interactions`` unless the totals row exists.

    Claims the totals row first (insert, do nothing on conflict), so of two processes
    upgrading one store only the first fills; returns whether this call did.
    """
    totals = TOTALS
    claimed = session.execute(
        insert(totals)
        .values(name=GLOBAL, likes=0, count=0)
        .on_conflict_do_nothing()
        .returning(totals.c.name)
    ).scalar_one_or_none()
    if claimed is None:
        return False
    inter = INTERACTIONS
    likes, count = func.coalesce(func.sum(inter.c.label), 0), func.count()
    for row_table, key in ((USERS, "user_id"), (ITEMS, "item_id")):
        session.execute(
            insert(row_table).from_select(
                [key, "likes", "count"],
                select(inter.c[key], likes, count).group_by(inter.c[key]),
            )
        )
    all_likes, all_count = session.execute(select(likes, count).select_from(inter)).one()
    session.execute(
        totals.update()
        .where(totals.c.name == GLOBAL)
        .values(likes=int(all_likes), count=int(all_count))
    )
    return True


def load_like_counts(session: Session) -> CollaborativeCounts:
    """The stored counts as a :class:`CollaborativeCounts` without co-like (the worker's
    in-memory copy)."""
    users = {
        k: [int(a), int(b)]
        for k, a, b in session.execute(
            select(UserLikeCountRow.user_id, UserLikeCountRow.likes, UserLikeCountRow.count)
        )
    }
    items = {
        k: [int(a), int(b)]
        for k, a, b in session.execute(
            select(ItemLikeCountRow.item_id, ItemLikeCountRow.likes, ItemLikeCountRow.count)
        )
    }
    total = session.get(LikeCountTotalRow, GLOBAL)
    return CollaborativeCounts.from_state(
        {
            "version": 1,
            "co_like_window": 0,
            "global": [total.likes, total.count] if total else [0, 0],
            "users": users,
            "items": items,
            "recent_likes": {},
            "pairs": [],
        }
    )


def like_counts_of(
    session: Session, users: Iterable[str], items: Iterable[str]
) -> CollaborativeCounts:
    """The stored counts of ``users``, ``items`` and the totals, as a
    :class:`CollaborativeCounts` without co-like: everything a batch touching only them reads.

    Read in the batch's transaction (after its lock, :mod:`lsat.stream.store.partitions`), so
    with several workers each batch counts on what every earlier commit counted.
    """
    wanted_users, wanted_items = sorted(set(users)), sorted(set(items))
    dialect = session.get_bind().dialect.name
    found: dict[str, dict[str, list[int]]] = {"users": {}, "items": {}}
    for kind, table, key, wanted in (
        ("users", USERS, "user_id", wanted_users),
        ("items", ITEMS, "item_id", wanted_items),
    ):
        for condition in member_of(table.c[key], wanted, dialect):
            query = select(table.c[key], table.c.likes, table.c.count).where(condition)
            for k, likes, count in session.execute(query):
                found[kind][str(k)] = [int(likes), int(count)]
    total = session.get(LikeCountTotalRow, GLOBAL)
    return CollaborativeCounts.from_state(
        {
            "version": 1,
            "co_like_window": 0,
            "global": [total.likes, total.count] if total else [0, 0],
            "users": found["users"],
            "items": found["items"],
            "recent_likes": {},
            "pairs": [],
        }
    )


def features_now(
    session: Session, user_id: str, item_ids: Sequence[str]
) -> dict[str, CollaborativeFeatures]:
    """Per item id, the features an event ``(user_id, item)`` would get now (co-like 0).

    One statement, so the user's, the items' and the global counts come from one snapshot.
    """
    users, items, totals = USERS, ITEMS, TOTALS
    wanted = list(dict.fromkeys(item_ids))
    query = union_all(
        select(literal("u"), users.c.likes, users.c.count, users.c.user_id).where(
            users.c.user_id == user_id
        ),
        select(literal("i"), items.c.likes, items.c.count, items.c.item_id).where(
            items.c.item_id.in_(wanted)
        ),
        select(literal("g"), totals.c.likes, totals.c.count, totals.c.name).where(
            totals.c.name == GLOBAL
        ),
    )
    user, total = (0, 0), (0, 0)
    found: dict[str, tuple[int, int]] = {}
    for kind, likes, count, key in session.execute(query):
        if kind == "u":
            user = (int(likes), int(count))
        elif kind == "g":
            total = (int(likes), int(count))
        else:
            found[str(key)] = (int(likes), int(count))
    return {item: CollaborativeFeatures(*user, *found.get(item, (0, 0)), *total) for item in wanted}


def candidate_samples(
    session: Session, user_id: str, item_ids: Sequence[str], length: int, timestamp: int = 0
) -> list[Sample]:
    """Samples for scoring ``(user_id, item)`` now, shaped like the stored ones: the user's
    last ``length`` interactions as history (fewer when there are fewer) and
    :func:`features_now`, read in one session. The label is unknown: 0, never to train on."""
    history = user_history(session, user_id, length)
    features = features_now(session, user_id, item_ids)
    items = tuple(item for item, _ in history)
    labels = tuple(label for _, label in history)
    return [
        Sample("", user_id, item, timestamp, 0, items, labels, features[item])
        for item in dict.fromkeys(item_ids)
    ]
