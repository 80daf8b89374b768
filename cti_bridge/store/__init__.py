"""The SQL store (SQLite through aiosqlite): schema migrations and every query."""

from cti_bridge.store.database import (
    Database,
    StoreError,
    StoreUnavailable,
    WriteHealth,
    is_transient,
    waiting_for_store,
)
from cti_bridge.store.store import CustomerRow, OpenCall, Recording, Store, TranscriptionJob

__all__ = [
    "CustomerRow",
    "Database",
    "OpenCall",
    "Recording",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TranscriptionJob",
    "WriteHealth",
    "is_transient",
    "waiting_for_store",
]
