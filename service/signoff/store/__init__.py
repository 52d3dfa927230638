"""Storage backends behind one Protocol (`Store`); `SqliteStore` is the embedded default."""

from signoff.store.base import DecisionRecord, ReviewQuery, ReviewRecord, Store
from signoff.store.sqlite import SqliteStore, WriterStats

__all__ = ["DecisionRecord", "ReviewQuery", "ReviewRecord", "SqliteStore", "Store", "WriterStats"]
