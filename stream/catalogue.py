"""The worker's ``items`` consumer and the item categories the mix-drift detectors read.

Mixed into :class:`~lsat.stream.processor.StreamProcessor`. A valid catalogue message is upserted
(the latest version wins), a bad one dead-lettered; both in one transaction per batch, isolated
like interactions (:class:`~lsat.stream.isolation.IsolatedHandler`). With several workers the
``items`` partitions are split between them too, so a worker also reads the categories of items
it has not seen from the store (:meth:`CatalogueHandler.learn_categories`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence

from lsat.data.types import Item
from lsat.stream.app import Outgoing
from lsat.stream.errors import InvalidEvent
from lsat.stream.events import parse_item
from lsat.stream.isolation import Handled, IsolatedHandler, Record
from lsat.stream.store import SourcePosition, StoreTransaction

__all__ = ["CATEGORY_RETRY_S", "CatalogueHandler", "position_of"]

CATEGORY_RETRY_S = 60.0
"""How long an item the store had no category for goes without being asked again."""


def position_of(source: SourcePosition) -> tuple[str | None, int, int]:
    """(topic, partition, offset) of a source message."""
    return (source.topic, source.partition, source.offset)


class CatalogueHandler(IsolatedHandler):
    """``items`` messages into the catalogue; item categories; consumed positions (for lag)."""

    categories: dict[str, Hashable]
    category_asked: dict[str, float]
    """Items the store had no category for → when it was asked (see :meth:`learn_categories`)."""
    clock: Callable[[], float]
    positions: dict[tuple[str, int], int]
    max_event_bytes: int

    def on_item(self, raw: bytes | None, source: SourcePosition) -> list[Outgoing]:
        """Handle one ``items`` message: upsert the catalogue entry (bad ones to the DLQ)."""
        return self.handle_items([(raw, source)]).outgoing

    def handle_items(self, batch: Sequence[Record]) -> Handled:
        """Upsert ``items`` messages in one transaction (isolated like interactions): a valid
        item is ``stored`` (the latest version wins), a bad one dead-lettered."""
        return self._isolated(batch, self._items_once, "items")

    def _items_once(self, batch: Sequence[Record]) -> Handled:
        handled = Handled()
        good: list[Item] = []
        with self.store.transaction() as tx:
            before = self.dlq.previous(tx, batch)
            for raw, source in batch:
                self._track_position(source)
                again = before.get(position_of(source))
                if again is not None:
                    self.dlq.again(handled, source, again)
                    continue
                try:
                    item = parse_item(raw, max_bytes=self.max_event_bytes)
                except InvalidEvent as error:
                    self.dlq.add(tx, handled, raw, source, error.reason_code, error.detail)
                    continue
                tx.upsert_item(item)
                good.append(item)
                handled.add(source, "stored")
        for item in good:
            self._remember_category(item.item_id, item.extra.get("genres"))
        self._count(handled, self.metrics.items, stored_too=True)
        return handled

    def load_categories(self) -> None:
        """Every stored item's category."""
        for item in self.store.catalogue().values():
            self._remember_category(item.item_id, item.extra.get("genres"))

    def learn_categories(self, tx: StoreTransaction, item_ids: Iterable[str]) -> None:
        """Categories of items this worker has not seen (another worker may have stored them).

        An item the store had no category for is asked again only after
        :data:`CATEGORY_RETRY_S` (without a catalogue every batch asked for all its items).
        """
        now = self.clock()
        asked = self.category_asked
        retry = CATEGORY_RETRY_S
        unknown = {
            i for i in item_ids if i not in self.categories and now - asked.get(i, -retry) >= retry
        }
        if unknown:
            for item_id, extra in tx.item_extras(unknown).items():
                self._remember_category(item_id, extra.get("genres"))
            for item_id in unknown:
                if item_id not in self.categories:
                    asked[item_id] = now

    def _remember_category(self, item_id: str, genres: str | None) -> None:
        if genres:
            self.categories[item_id] = genres.split("|", 1)[0]

    def _track_position(self, source: SourcePosition) -> None:
        self.positions[(source.topic or "", source.partition)] = source.offset + 1
