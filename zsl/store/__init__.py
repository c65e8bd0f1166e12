"""Persistence of the per-guild class registry, chosen by a database URL."""

from __future__ import annotations

import re

from zsl.errors import StoreError
from zsl.store.base import DEFAULT_STORE_TIMEOUT, Store
from zsl.store.sqlite import SQLiteStore

DEFAULT_DATABASE_URL = "sqlite:///data/zsl.sqlite3"

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_STORE_TIMEOUT",
    "SQLiteStore",
    "Store",
    "open_store",
    "redact_url",
]

# password=... in a URL's query or a key=value connection string, quoted or not.
_PASSWORD_PARAMETER = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` as a message or a log line may show it: any password replaced by ``***``.

    Errs on the side of hiding: in a malformed URL everything between the first ``:`` of the
    user part and the last ``@`` is hidden.
    """
    prefix, sep, rest = url.partition("://")
    if not sep:
        prefix, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if at and colon:
        rest = f"{user}:***@{host}"
    return _PASSWORD_PARAMETER.sub(r"\1***", prefix + sep + rest)


async def open_store(
    url: str = DEFAULT_DATABASE_URL,
    *,
    create: bool = True,
    call_timeout: float = DEFAULT_STORE_TIMEOUT,
) -> Store:
    """Open the registry named by ``url``: ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    or ``postgresql://user:password@host:port/database``. With ``create`` false, a SQLite
    registry must exist already: no folder or file is created (a PostgreSQL database always
    must). Opening, and every call of the store, gives up after ``call_timeout`` seconds
    with StoreUnavailableError, whatever stalls.

    Raises:
        StoreError: the URL is not understood or the database cannot be opened (or, with
            ``create`` false, does not exist).
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        from zsl.store.postgres import PostgresStore

        return await PostgresStore.open(url, call_timeout=call_timeout)
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise StoreError(
                f"The database URL {redact_url(url)} has no file path. Use "
                "sqlite:///data/zsl.sqlite3."
            )
        return await SQLiteStore.open(rest[1:], create=create, call_timeout=call_timeout)
    raise StoreError(
        f"The database URL {redact_url(url)} is not supported. Use "
        "sqlite:///path/to/file.sqlite3 or postgresql://user:password@host/database."
    )
