"""The shared registry: PostgreSQL through asyncpg, for several bot processes at once.

The schema and the rules are :mod:`zsl.store.sql`'s; this module keeps the connections, the
deadline of each call, what the server's errors mean, and the notifications. Each write of a
guild runs in one transaction that also sends ``NOTIFY zsl_guild_changed, '<guild_id> <origin>'``;
other processes listen and reload just that guild (see :meth:`PostgresStore._listen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from zsl.errors import StoreError, StoreUnavailableError
from zsl.records import ClassDefinition
from zsl.store import redact_url
from zsl.store.base import DEFAULT_STORE_TIMEOUT, timed_out
from zsl.store.sql import (
    CLASS_COLUMNS,
    ColumnTypes,
    Db,
    OffSchemaError,
    Rule,
    SQLStore,
    class_rows,
    migrate,
    migrations,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "zsl_guild_changed"

TYPES = ColumnTypes(
    big_integer="BIGINT",
    real="DOUBLE PRECISION",
    serial_key="BIGSERIAL PRIMARY KEY",
    keyed_table="",
)
MIGRATIONS = migrations(TYPES)
"""The SQL of each schema version, oldest first (zsl_schema.version counts the applied ones)."""
_MIGRATION_LOCK = 0x7A736C  # pg_advisory_xact_lock key: one migrating process at a time

_REFUSED = (
    "The class registry refused the request (a database error). Nothing was changed; please try "
    "again, and tell the bot's operator if it keeps happening."
)
_UNAVAILABLE = (
    "The class registry cannot be {verb} right now (the database is unreachable). Nothing was "
    "changed; please try again in a minute."
)


def _connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        OSError,
        asyncio.TimeoutError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.ReadOnlySQLTransactionError,
        asyncpg.DiskFullError,
    )


class PostgresStore(SQLStore):
    """:class:`zsl.store.Store` on PostgreSQL. Every write is committed before it returns."""

    def __init__(self, pool: Any, dsn: str, timeout: float = DEFAULT_STORE_TIMEOUT) -> None:
        self._pool = pool
        self._dsn = dsn
        self._timeout = timeout
        self._listener: Any = None
        self._closed = False
        # Names this store's writes in their notifications, so that it skips its own. Backend
        # pids cannot do that: after a server restart in a new PID namespace another process's
        # connection may get a pid this store once wrote through.
        self._origin = uuid.uuid4().hex

    @classmethod
    async def open(cls, dsn: str, *, call_timeout: float = DEFAULT_STORE_TIMEOUT) -> PostgresStore:
        """Connect (a small pool) and migrate the schema.

        Opening, and every call of the store, gives up after ``call_timeout`` seconds with
        StoreUnavailableError, whatever stalls (connecting, a pool connection, any statement).

        Raises:
            StoreError: the server is unreachable, refuses us, or has a newer schema.
        """
        try:
            import asyncpg
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL needs the asyncpg package. Install it with 'pip install asyncpg'."
            ) from exc
        try:
            # timeout: for each connection the pool opens (connect, authenticate), now or later.
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=4,
                timeout=call_timeout,
                init=_plan_once,
                reset=_keep_session,
            )
        except Exception as exc:  # any failure to connect, e.g. OverflowError for a port 99999
            detail = redact_url(str(exc).splitlines()[0].rstrip(".")) if str(exc) else ""
            raise StoreError(
                f"Cannot connect to PostgreSQL at {redact_url(dsn)} ({type(exc).__name__}"
                f"{': ' + detail if detail else ''}). Check ZSL_DATABASE_URL and that the server is"
                " running."
            ) from exc
        store = cls(pool, dsn, call_timeout)
        try:
            await store.transact("opened", _migrate)
        except BaseException:
            pool.terminate()  # not close(): that would wait on a server that may not answer
            raise
        return store

    async def transact(self, verb: str, work: Rule[T], *, atomic: bool = True) -> T:
        import asyncpg

        if self._closed:
            raise StoreError("The class registry is closed. Restart the bot.")
        held: list[Any] = []  # the connection, once the pool has given one
        attempt = asyncio.ensure_future(self._attempt(work, held, atomic))
        try:
            await asyncio.wait({attempt}, timeout=self._timeout)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        try:
            if not attempt.done():
                # Stalled: cut the connection, so that its transaction dies with it (the server
                # rolls it back) and no rollback or release waits on a server that is silent.
                for db in held:
                    db.terminate()
                attempt.cancel()
                attempt.add_done_callback(_forget)
                log.warning("postgres %s abandoned after %gs", verb, self._timeout)
                raise timed_out(verb, self._timeout)
            return attempt.result()
        except _connection_errors() as exc:
            log.warning("postgres %s failed: %r", verb, exc)
            raise StoreUnavailableError(_UNAVAILABLE.format(verb=verb)) from exc
        except (asyncpg.PostgresError, UnicodeError, OffSchemaError) as exc:
            # Anything else the server (or the encoding) refuses: the transaction was rolled
            # back, so nothing changed; the operator finds the detail in the log.
            log.error("postgres %s refused: %r", verb, exc)
            raise StoreError(_REFUSED) from exc

    async def _attempt(self, work: Rule[T], held: list[Any], atomic: bool) -> T:
        async with self._pool.acquire() as db:
            held.append(db)
            if not atomic:
                return await work(_PostgresDb(db, self._origin))
            async with db.transaction():
                return await work(_PostgresDb(db, self._origin))

    async def bulk_insert_classes(self, rows: Iterable[tuple[int, ClassDefinition]]) -> None:
        table = class_rows(rows)

        async def insert(db: Db) -> None:
            assert isinstance(db, _PostgresDb)  # COPY: the fastest way in, one round trip
            await db.connection.copy_records_to_table(
                "classes", records=table, columns=CLASS_COLUMNS
            )

        await self.transact("written", insert)

    async def subscribe(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        """Start listening, and return once notifications are heard (or after the timeout).

        The caller loads the registry after this returns, so no write falls between the load
        and the first LISTEN. If listening is not up in time, the listener reloads everything
        once it is.
        """
        if self._listener is not None:
            return
        listening = asyncio.Event()
        self._listener = asyncio.create_task(
            self._listen(on_change, on_reconnect, listening), name="zsl-postgres-listen"
        )
        try:
            await asyncio.wait_for(listening.wait(), self._timeout)
        except TimeoutError:
            log.warning("not listening for changes yet; will reload everything once it is")
            # Setting it now tells the listener that the caller has loaded without it.
            listening.set()

    async def _listen(
        self,
        on_change: Callable[[int], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
        listening: asyncio.Event,
    ) -> None:
        """Keep one LISTEN connection alive; after every reconnect, ask for a full reload."""
        import asyncpg

        pending: set[asyncio.Future[None]] = set()

        def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            # "<guild_id> <origin>"; older versions send a bare "<guild_id>", never ours.
            guild, _, origin = payload.partition(" ")
            if origin == self._origin:
                # This store wrote it and its caller already swapped the snapshot; reloading
                # would re-embed the whole guild under its lock on every write.
                return
            try:
                guild_id = int(guild)
            except ValueError:
                log.warning("ignoring a malformed notification %r", payload)
                return
            task = asyncio.ensure_future(on_change(guild_id))
            pending.add(task)
            task.add_done_callback(finished)

        def finished(task: asyncio.Future[None]) -> None:
            pending.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.warning("reloading a changed guild failed (%r)", task.exception())

        delay, first = 0.2, True
        try:
            while not self._closed:
                try:
                    connection = await asyncpg.connect(
                        self._dsn, timeout=self._timeout, command_timeout=self._timeout
                    )
                except (*_connection_errors(), asyncpg.PostgresError) as exc:
                    log.warning("cannot listen for changes (%r); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                connection.add_termination_listener(_resolver(lost))
                try:
                    await connection.add_listener(CHANNEL, notified)
                    if not first or listening.is_set():
                        # A lost connection, or a first LISTEN after the caller stopped waiting
                        # and loaded the registry: changes may have been missed meanwhile.
                        log.info("listening (again); catching up on what changed meanwhile")
                        await on_reconnect()
                    listening.set()
                    first, delay = False, 0.2
                    while not lost.done() and not self._closed:
                        # A dead socket is not always noticed until we use it: probe now and then.
                        await asyncio.wait({lost}, timeout=1.0)
                        if not lost.done():
                            await connection.fetchval("SELECT 1", timeout=self._timeout)
                except (*_connection_errors(), asyncpg.PostgresError, StoreError) as exc:
                    log.warning("lost the change listener (%r); reconnecting", exc)
                finally:
                    if not connection.is_closed():
                        connection.terminate()
        finally:
            for task in pending:  # closing: reloads still running would find the store closed
                task.cancel()

    async def integrity_check(self) -> list[str]:
        async def check(db: Db) -> list[str]:
            rows = await db.fetch(
                "SELECT guild_id, name_key FROM classes WHERE name_key = '' OR name = ''"
            )
            return [f"guild {r[0]}: a class without a name" for r in rows]

        return await self.transact("read", check)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        try:
            await asyncio.wait_for(self._pool.close(), self._timeout)
        except TimeoutError:
            log.warning("PostgreSQL did not answer while closing; connections cut")
            self._pool.terminate()


async def _plan_once(connection: Any) -> None:
    """Let a new connection plan each statement once.

    Every statement of the store finds its rows by guild id (or key) through an index, so one
    plan fits all values of its parameters; left to choose, the server planned the read of
    guilds (an id array) anew on every call, 0.1 ms of its CPU each time. A SET, not a startup
    parameter: a connection pooler in front of the server may refuse unknown ones.
    """
    if connection.get_server_version().major >= 12:  # older servers always choose
        await connection.execute("SET plan_cache_mode = force_generic_plan")


async def _keep_session(_connection: object) -> None:
    """Return a connection to the pool as it is: the pool still rolls back a transaction left
    open, and the store changes nothing else in a session (no SET but :func:`_plan_once`'s, no
    LISTEN, cursor or session lock; the listener has its own connection), so asyncpg's default
    reset (RESET ALL, UNLISTEN *, CLOSE ALL, unlocking advisory locks) would only cost a round
    trip after every call, and undo :func:`_plan_once`."""


def _forget(task: asyncio.Future[Any]) -> None:
    # An abandoned attempt ends with whatever its cut connection raised; nobody waits for it.
    if not task.cancelled():
        task.exception()


async def _migrate(db: Db) -> None:
    await db.execute("SELECT pg_advisory_xact_lock(?)", _MIGRATION_LOCK)
    await db.execute("CREATE TABLE IF NOT EXISTS zsl_schema (version INTEGER NOT NULL)")
    rows = await db.fetch("SELECT version FROM zsl_schema")
    if not rows:
        await db.execute("INSERT INTO zsl_schema (version) VALUES (0)")
    await migrate(db, rows[0][0] if rows else 0)


def _resolver(future: asyncio.Future[None]) -> Callable[[object], None]:
    def resolve(_connection: object) -> None:
        if not future.done():
            future.set_result(None)

    return resolve


class _PostgresDb:
    """:class:`zsl.store.sql.Db` on an asyncpg connection (inside a transaction, unless the
    work is a read that asked for none)."""

    types = TYPES

    def __init__(self, connection: Any, origin: str) -> None:
        self._db = connection
        self._origin = origin

    @property
    def connection(self) -> Any:
        return self._db

    async def fetch(self, sql: str, *args: object) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self._db.fetch(_numbered(sql), *args)
        return rows

    async def execute(self, sql: str, *args: object) -> int:
        status: str = await self._db.execute(_numbered(sql), *args)
        # A command tag: "DELETE 3", "INSERT 0 1", "UPDATE 2"; "CREATE TABLE" changes no rows.
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    def one_of(self, column: str, values: Sequence[int]) -> tuple[str, tuple[object, ...]]:
        # One array parameter, not an IN list: the statement's text is the same for any number
        # of values, so the server plans it once per connection.
        return f"{column} = ANY(?::BIGINT[])", (list(values),)

    async def lock_guild(self, guild_id: int) -> None:
        # Serialises writers of one guild across processes, so the count check and the insert
        # cannot interleave with another process's (the class limit holds).
        await self._db.execute("SELECT pg_advisory_xact_lock($1)", guild_id)

    async def changed(self, guild_id: int) -> None:
        # Sent when the transaction commits; the payload names this store so that it can skip
        # its own writes.
        await self._db.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{guild_id} {self._origin}")

    async def set_schema_version(self, version: int) -> None:
        await self._db.execute("UPDATE zsl_schema SET version = $1", version)


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """``sql`` with PostgreSQL's placeholders: each ``?`` becomes $1, $2, ... in turn (the
    statements never hold a ``?`` of their own)."""
    parts = sql.split("?")
    return "".join(f"{part}${number}" for number, part in enumerate(parts[:-1], 1)) + parts[-1]
