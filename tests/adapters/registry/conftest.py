"""Fixtures of the registry tests: a migrated registry on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lsat.adapters.lifecycle.registry import SqlRegistryStore, open_registry


@pytest.fixture
def registry(db_url: str) -> Iterator[SqlRegistryStore]:
    """A freshly migrated registry (runs each test on SQLite and on PostgreSQL)."""
    store = open_registry(db_url)
    try:
        yield store
    finally:
        store.close()
