"""Read-side queries of the store for its consumers (the scorer's history and candidates).

Each function runs in the session it is given (:class:`~lsat.stream.store.SampleStore` opens a
read-only one), so no other package queries the store's ORM rows.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lsat.stream.store.models import InteractionRow

__all__ = ["liked_unseen_items", "user_history"]


def user_history(session: Session, user_id: str, length: int) -> tuple[tuple[str, int], ...]:
    """``user_id``'s last ``length`` stored ``(item id, label)`` pairs, in arrival order."""
    query = (
        select(InteractionRow.item_id, InteractionRow.label)
        .where(InteractionRow.user_id == user_id)
        .order_by(InteractionRow.id.desc())
        .limit(length)
    )
    rows = session.execute(query).all()
    return tuple((str(item), int(label)) for item, label in reversed(rows))


def liked_unseen_items(session: Session, user_id: str, count: int, recent: int) -> list[str]:
    """Up to ``count`` items of the latest ``recent`` interactions (all users) that ``user_id``
    never touched, most liked first (ties: more interactions, then item id)."""
    latest = (
        select(InteractionRow.item_id, InteractionRow.label)
        .order_by(InteractionRow.id.desc())
        .limit(recent)
        .subquery()
    )
    seen = select(InteractionRow.item_id).where(InteractionRow.user_id == user_id)
    likes = func.sum(latest.c.label)
    query = (
        select(latest.c.item_id)
        .where(latest.c.item_id.not_in(seen))
        .group_by(latest.c.item_id)
        .order_by(likes.desc(), func.count().desc(), latest.c.item_id)
        .limit(count)
    )
    return [str(item) for (item,) in session.execute(query).all()]
