"""Reading guilds back: a batch read returns exactly what reads one by one return, on both
backends, and a read of PostgreSQL costs one round trip and no planning."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from zsl import StoreError
from zsl.records import ClassDefinition, GuildRecord
from zsl.store import open_store
from zsl.store.postgres import PostgresStore

pytestmark = pytest.mark.asyncio

SPORTS = ClassDefinition("sports", "football match", emoji="⚽")
MUSIC = ClassDefinition("music", "song album")
FILMS = ClassDefinition("films", "movie actor")

FULL, THRESHOLD_ONLY, VERSION_ONLY, EXAMPLES_ONLY, UNKNOWN = 1, 2, 3, 4, 99
THRESHOLD = 0.1 + 0.2  # 0.30000000000000004: a float that must come back bit for bit


async def _fill(url: str) -> None:
    """One guild of each kind a read must handle."""
    store = await open_store(url)
    try:
        for cls in (SPORTS, MUSIC, FILMS):  # versions 1-3
            await store.insert_class(FULL, cls, 100)
        await store.add_example(FULL, "music", "a new album", 10)  # 4
        await store.add_example(FULL, "music", "the band played a song", 10)  # 5
        await store.add_example(FULL, "films", "the actor was great", 10)  # 6
        await store.set_threshold(FULL, THRESHOLD)  # 7
        await store.set_threshold(THRESHOLD_ONLY, 0.5)  # 1
        await store.insert_class(VERSION_ONLY, MUSIC, 100)  # 1
        await store.delete_class(VERSION_ONLY, "music")  # 2: nothing left but the counter
        await store.insert_class(EXAMPLES_ONLY, FILMS, 100)  # 1
        await store.add_example(EXAMPLES_ONLY, "films", "a film", 10)  # 2
        await store.add_example(EXAMPLES_ONLY, "films", "b film", 10)  # 3
        await store.add_example(EXAMPLES_ONLY, "films", "an earlier film", 10)  # 4
        await store.remove_example(EXAMPLES_ONLY, "films", "a film")  # 5
    finally:
        await store.close()


def _with_versions(records: dict[int, GuildRecord]) -> dict[int, tuple[GuildRecord, int]]:
    # GuildRecord leaves its version out of ==: compare it too.
    return {guild: (record, record.version) for guild, record in records.items()}


async def test_a_batch_read_returns_what_reads_one_by_one_return(store_url: str) -> None:
    await _fill(store_url)
    store = await open_store(store_url)

    batch = await store.load_guilds([UNKNOWN, VERSION_ONLY, FULL, EXAMPLES_ONLY, FULL, 2])
    singles = {guild: await store.load_guild(guild) for guild in sorted(batch)}
    everything = await store.load_all()
    await store.close()

    assert _with_versions(batch) == _with_versions(singles)
    assert list(batch) == [FULL, THRESHOLD_ONLY, VERSION_ONLY, EXAMPLES_ONLY, UNKNOWN]
    music = ClassDefinition("music", "song album", ("a new album", "the band played a song"))
    films = ClassDefinition("films", "movie actor", ("the actor was great",))
    later_films = ClassDefinition("films", "movie actor", ("b film", "an earlier film"))
    assert _with_versions(batch) == {
        FULL: (GuildRecord((SPORTS, music, films), THRESHOLD), 7),
        THRESHOLD_ONLY: (GuildRecord((), 0.5), 1),
        VERSION_ONLY: (GuildRecord(), 2),
        EXAMPLES_ONLY: (GuildRecord((later_films,)), 5),
        UNKNOWN: (GuildRecord(), 0),
    }
    assert batch[FULL].threshold.hex() == THRESHOLD.hex()  # type: ignore[union-attr]
    # Reading everything leaves out a guild with nothing in it but its counter.
    assert _with_versions(everything) == {
        guild: found for guild, found in _with_versions(batch).items() if guild in (1, 2, 4)
    }


async def test_a_read_of_more_guilds_than_one_statement_holds_misses_none(
    store_url: str,
) -> None:
    store = await open_store(store_url)
    guilds = range(1, 452)  # more than two statements' worth (200 guilds each)
    await store.bulk_insert_classes(
        (guild, ClassDefinition(f"class{n}", f"words of {guild}"))
        for guild in guilds
        for n in (0, 1)
    )
    await store.set_threshold(451, 0.25)

    read = await store.load_guilds([*guilds, 1000])
    versions = await store.versions([*guilds, 1000])
    await store.close()

    assert list(read) == [*guilds, 1000]
    assert read[1000] == GuildRecord()
    assert all(
        read[guild].classes
        == (
            ClassDefinition("class0", f"words of {guild}"),
            ClassDefinition("class1", f"words of {guild}"),
        )
        for guild in guilds
    )
    assert [read[guild].threshold for guild in (1, 450, 451)] == [None, None, 0.25]
    assert versions == {**{guild: 0 for guild in guilds}, 451: 1, 1000: 0}


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("classes", "name"),
        ("classes", "emoji"),
        ("examples", "text"),
        ("guild_settings", "threshold"),
        ("guild_versions", "version"),
    ],
)
async def test_a_sqlite_value_off_its_columns_type_is_refused(
    tmp_path: Path, table: str, column: str
) -> None:
    url = f"sqlite:///{tmp_path}/zsl.sqlite3"
    await _fill(url)
    db = sqlite3.connect(tmp_path / "zsl.sqlite3")
    with db:  # a blob keeps its type in any column: what a garbled page can read back as
        db.execute(f"UPDATE {table} SET {column} = x'00ff' WHERE guild_id = ?", (FULL,))
    db.close()
    store = await open_store(url)

    with pytest.raises(StoreError, match="not a usable class database") as refused:
        await store.load_guilds([FULL, THRESHOLD_ONLY])
    others = await store.load_guilds([THRESHOLD_ONLY, VERSION_ONLY])
    await store.close()

    assert "registry" in str(refused.value)
    assert _with_versions(others) == {
        THRESHOLD_ONLY: (GuildRecord((), 0.5), 1),
        VERSION_ONLY: (GuildRecord(), 2),
    }


async def test_a_postgres_read_is_one_round_trip(pg_url: str) -> None:
    await _fill(pg_url)
    async with _counting_relay(pg_url) as (url, round_trips):
        store = await open_store(url)
        await store.load_guilds([FULL])  # prepares the statement, once for any number of guilds
        before = round_trips()

        five = await store.load_guilds([FULL, THRESHOLD_ONLY, VERSION_ONLY, EXAMPLES_ONLY, 99])
        two = await store.load_guilds([FULL, VERSION_ONLY])
        one = await store.load_guild(THRESHOLD_ONLY)
        versions = await store.versions([FULL, VERSION_ONLY])
        after = round_trips()
        await store.close()

    assert after - before == 4
    assert [len(five), len(two), one, versions] == [5, 2, GuildRecord((), 0.5), {1: 7, 3: 2}]


async def test_postgres_plans_the_read_of_guilds_once(pg_url: str) -> None:
    await _fill(pg_url)
    store = await open_store(pg_url)
    assert isinstance(store, PostgresStore)
    for count in range(1, 21):  # any number of guilds: one statement, one plan
        await store.load_guilds(range(count))

    # The store's calls take turns on one connection: this one is the reads' own.
    plans = await store.transact(
        "read",
        lambda db: db.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement"
            " LIKE '%UNION ALL%FROM guild_versions%' AND statement NOT LIKE '%pg_prepared%'"
        ),
        atomic=False,
    )
    await store.close()

    assert [tuple(row) for row in plans] == [(20, 0)]


_PROTOCOL_3 = 196608  # the code of a startup message; SSL and GSS requests come before it


@contextlib.asynccontextmanager
async def _counting_relay(url: str) -> AsyncIterator[tuple[str, Callable[[], int]]]:
    """A TCP relay to the server of ``url`` that counts the round trips of its clients: each
    Sync (extended protocol) or Query (simple protocol) message asks the server to answer.

    Yields the URL through the relay (without SSL, so that the messages can be read) and a
    function that returns the count so far."""
    parts = urlsplit(url)
    asked = 0
    pumps: set[asyncio.Task[None]] = set()

    async def pump_messages(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal asked
        code = 0
        while code != _PROTOCOL_3:  # untyped packets: a length, then a code
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            writer.write(head + await reader.readexactly(length - 8))
        while True:  # typed messages: a type byte, then a length that counts itself
            head = await reader.readexactly(5)
            body = await reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
            asked += head[:1] in (b"S", b"Q")
            writer.write(head + body)

    async def pump_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)

    async def relay(client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(parts.hostname, parts.port)
        both = [
            asyncio.ensure_future(pump_messages(client_in, server_out)),
            asyncio.ensure_future(pump_bytes(server_in, client_out)),
        ]
        pumps.update(both)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        for pump in both:
            pump.cancel()
        client_out.close()
        server_out.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relayed = parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}", query="sslmode=disable")
    try:
        yield urlunsplit(relayed), lambda: asked
    finally:
        server.close()
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
