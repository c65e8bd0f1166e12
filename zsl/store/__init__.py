"""Persistence of the per-guild class registry, chosen by a database URL."""

from __future__ import annotations

from zsl.errors import StoreError
from zsl.store.base import ClassDefinition, GuildRecord, Store, Vote, name_key
from zsl.store.sqlite import SQLiteStore

DEFAULT_DATABASE_URL = "sqlite:///data/zsl.sqlite3"

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ClassDefinition",
    "GuildRecord",
    "SQLiteStore",
    "Store",
    "Vote",
    "name_key",
    "open_store",
]


async def open_store(url: str = DEFAULT_DATABASE_URL) -> Store:
    """Open the registry named by ``url``: ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    or ``postgresql://user:password@host:port/database``.

    Raises:
        StoreError: the URL is not understood or the database cannot be opened.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        from zsl.store.postgres import PostgresStore

        return await PostgresStore.open(url)
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise StoreError(
                f"The database URL {url} has no file path. Use sqlite:///data/zsl.sqlite3."
            )
        return await SQLiteStore.open(rest[1:])
    raise StoreError(
        f"The database URL {url} is not supported. Use sqlite:///path/to/file.sqlite3 or "
        "postgresql://user:password@host/database."
    )
