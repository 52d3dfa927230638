"""Storage backends behind one Protocol (`Store`); `SqliteStore` is the embedded default."""

from signoff.store.base import DecisionRecord, Store
from signoff.store.sqlite import SqliteStore, WriterStats

__all__ = ["DecisionRecord", "SqliteStore", "Store", "WriterStats"]
