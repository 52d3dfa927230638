"""Storage backends behind one Protocol (`Store`); `SqliteStore` is the embedded default."""

from signoff.store.base import (
    AuditQuery,
    Checkpoint,
    CheckpointSuperseded,
    DecisionRecord,
    ReviewQuery,
    ReviewRecord,
    Store,
)
from signoff.store.sqlite.store import SqliteStore, WriterStats

__all__ = [
    "AuditQuery",
    "Checkpoint",
    "CheckpointSuperseded",
    "DecisionRecord",
    "ReviewQuery",
    "ReviewRecord",
    "SqliteStore",
    "Store",
    "WriterStats",
]
