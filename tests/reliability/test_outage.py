"""Outages: the database goes away, then comes back; the model file is missing or damaged.

While the database is gone every write answers at once with a plain apology (inside Discord's
three seconds), classification keeps working from the snapshots, and nothing is half-written.
When the database returns, the same service (the same bot process) works again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.conftest import BotProcess
from tests.e2e.fakediscord import DEFERRED_CHANNEL_MESSAGE, FakeDiscord
from tests.reliability.outages import (
    Cluster,
    fill_disk,
    frozen,
    own_cluster,
    read_only,
    small_disk,
)
from tests.reliability.support import assert_plain
from zsl import (
    ClassDefinition,
    Encoder,
    StoreError,
    StoreUnavailableError,
    WordVectors,
    ZeroShotService,
)
from zsl.store import SQLiteStore, open_store

ASYNC = pytest.mark.asyncio(loop_scope="module")

GUILD = 42
DISCORD_SECONDS = 3.0
SPORTS = ClassDefinition("sports", "football match team goal")
MUSIC = ClassDefinition("music", "song album band concert")
WRITES: dict[str, Callable[[ZeroShotService], Awaitable[Any]]] = {
    "add": lambda s: s.add_class(GUILD, "music", "song album band concert"),
    "edit": lambda s: s.edit_class(GUILD, "sports", description="tennis racket court"),
    "rename": lambda s: s.edit_class(GUILD, "sports", new_name="football"),
    "remove": lambda s: s.remove_class(GUILD, "SPORTS"),
    "threshold": lambda s: s.set_threshold(GUILD, 0.9),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def encoder(glove: WordVectors) -> Encoder:
    return await asyncio.to_thread(Encoder, glove)


async def open_service(encoder: Encoder, url: str) -> ZeroShotService:
    service = ZeroShotService(encoder, await open_store(url))
    await service.reload()
    await service.store.subscribe(service.reload, service.reload)
    return service


async def check_refusals_during_outage(service: ZeroShotService) -> None:
    """Every write is refused at once with a plain apology; reads and classify still work."""
    for name, write in WRITES.items():
        with pytest.raises(StoreUnavailableError) as refused:
            async with asyncio.timeout(DISCORD_SECONDS):
                await write(service)
        assert_plain(refused.value)
        assert "try again" in str(refused.value), name
    result = await service.classify(GUILD, "what a goal in the match")
    assert result.top.name == "sports"
    assert await service.classes(GUILD) == (SPORTS,)
    assert await service.threshold(GUILD) == 0.6


async def check_recovery(service: ZeroShotService, seconds: float = 30.0) -> None:
    """The same service writes again once the database is back (no restart, no reopen)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            await service.add_class(GUILD, "music", "song album band concert")
            break
        except StoreUnavailableError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
    await service.set_threshold(GUILD, 0.7)
    record = await service.store.load_guild(GUILD)
    assert record.classes == (SPORTS, ClassDefinition("music", "song album band concert"))
    assert record.threshold == 0.7
    assert await service.classes(GUILD) == record.classes
    assert await service.store.integrity_check() == []


@ASYNC
async def test_read_only_sqlite_file(encoder: Encoder, tmp_path: Path) -> None:
    database = tmp_path / "zsl.sqlite3"
    service = await open_service(encoder, f"sqlite:///{database}")
    try:
        await service.add_class(GUILD, SPORTS.name, SPORTS.description)
        await service.set_threshold(GUILD, 0.6)
        files = [database, Path(f"{database}-wal")]

        with read_only(*files):
            await check_refusals_during_outage(service)
            record = await service.store.load_guild(GUILD)  # reading still works

        assert record.classes == (SPORTS,)
        assert record.threshold == 0.6
        await check_recovery(service, seconds=5)
    finally:
        await service.close()


@ASYNC
async def test_full_disk(encoder: Encoder, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk) as mounted:
        if not mounted:
            pytest.skip("mount is not allowed here, so no small disk to fill")
        service = await open_service(encoder, f"sqlite:///{disk}/zsl.sqlite3")
        try:
            await service.add_class(GUILD, SPORTS.name, SPORTS.description)
            await service.set_threshold(GUILD, 0.6)
            assert fill_disk(disk / "filler") > 0

            await check_refusals_during_outage(service)
            with pytest.raises(StoreUnavailableError, match="the disk is full"):
                await service.add_class(GUILD, "music", "song")

            (disk / "filler").unlink()
            await check_recovery(service, seconds=5)
        finally:
            await service.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this module's own, so stopping it stops nobody else's tests."""
    server = own_cluster()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@ASYNC
async def test_postgresql_stopped_and_started_again(encoder: Encoder, cluster: Cluster) -> None:
    service = await open_service(encoder, cluster.url)
    watcher = await open_service(encoder, cluster.url)  # another process sharing the registry
    try:
        await service.add_class(GUILD, SPORTS.name, SPORTS.description)
        await service.set_threshold(GUILD, 0.6)

        await asyncio.to_thread(cluster.stop)
        try:
            await check_refusals_during_outage(service)
        finally:
            await asyncio.to_thread(cluster.start)

        await check_recovery(service)
        for _ in range(200):  # the watcher's change feed reconnects and hears about it
            if await watcher.classes(GUILD) == await service.classes(GUILD):
                break
            await asyncio.sleep(0.05)
        assert await watcher.classes(GUILD) == await service.classes(GUILD)
    finally:
        await service.close()
        await watcher.close()


STORE_TIMEOUT = 1.0
SLACK = 1.0  # a busy machine's scheduling, on top of the deadline
READ, WRITTEN = "cannot be read right now", "cannot be written right now"


async def refused_in_time(
    call: Callable[[], Awaitable[Any]],
    sentence: str,
    error: type[StoreError] = StoreUnavailableError,
) -> None:
    """``call()`` ends in a plain ``error`` saying ``sentence`` within the deadline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(error) as refused:
        async with asyncio.timeout(30):  # a hang fails the test instead of stopping the suite
            await call()
    took = loop.time() - started
    assert took < STORE_TIMEOUT + SLACK, f"{sentence}: {took:.1f}s"
    assert_plain(refused.value)
    assert sentence in str(refused.value)


@ASYNC
async def test_postgresql_frozen_every_call_answers_within_its_deadline(cluster: Cluster) -> None:
    await asyncio.to_thread(cluster_database, cluster, "frozen")
    url = cluster.url.rsplit("/", 1)[0] + "/frozen"
    store = await open_store(url, call_timeout=STORE_TIMEOUT)
    other = await open_store(url, call_timeout=STORE_TIMEOUT)  # another process, listening
    await other.subscribe(_nothing_to_reload, _nothing_everything_to_reload)
    loop = asyncio.get_running_loop()
    try:
        await store.insert_class(GUILD, SPORTS, 100)

        with frozen(cluster):
            await refused_in_time(lambda: store.load_guild(GUILD), READ)
            await refused_in_time(lambda: store.list_votes(GUILD, 10), READ)
            await refused_in_time(lambda: store.insert_class(GUILD, MUSIC, 100), WRITTEN)
            await refused_in_time(lambda: store.set_threshold(GUILD, 0.9), WRITTEN)
            await refused_in_time(
                lambda: open_store(url, call_timeout=STORE_TIMEOUT),
                "Cannot connect to PostgreSQL",
                StoreError,
            )
            started = loop.time()
            await asyncio.wait_for(other.close(), 30)
            closing = loop.time() - started

        await store.insert_class(GUILD, MUSIC, 100)  # not a duplicate: the abandoned one died
        record = await store.load_guild(GUILD)
    finally:
        await store.close()
        await other.close()

    assert closing < STORE_TIMEOUT + SLACK
    assert record.classes == (SPORTS, MUSIC)
    assert record.threshold is None


async def _nothing_to_reload(_guild_id: int) -> None:
    return None


async def _nothing_everything_to_reload() -> None:
    return None


@ASYNC
async def test_sqlite_worker_stuck_on_a_lock_answers_within_its_deadline(tmp_path: Path) -> None:
    database = tmp_path / "zsl.sqlite3"
    # Another connection's lock keeps the worker thread inside SQLite for up to a minute.
    store = await SQLiteStore.open(database, call_timeout=STORE_TIMEOUT, busy_timeout=60)
    await store.insert_class(GUILD, SPORTS, 100)
    holder = sqlite3.connect(database, isolation_level=None)
    loop = asyncio.get_running_loop()
    try:
        holder.execute("BEGIN IMMEDIATE")
        await refused_in_time(lambda: store.insert_class(GUILD, MUSIC, 100), WRITTEN)
        await refused_in_time(lambda: store.load_guild(GUILD), READ)  # queued behind it
        holder.execute("ROLLBACK")
        record = await store.load_guild(GUILD)  # runs after the abandoned write on the worker
        await store.insert_class(GUILD, ClassDefinition("news"), 100)
        after = await store.load_guild(GUILD)

        holder.execute("BEGIN IMMEDIATE")  # stuck again: closing does not wait for the worker
        await refused_in_time(lambda: store.insert_class(GUILD, MUSIC, 100), WRITTEN)
        started = loop.time()
        await asyncio.wait_for(store.close(), 30)
        closing = loop.time() - started
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        await store.close()

    assert record.classes == (SPORTS,)  # the abandoned write committed nothing
    assert after.classes == (SPORTS, ClassDefinition("news"))
    assert closing < STORE_TIMEOUT + SLACK


# -- through the bot ----------------------------------------------------------------------------

ADMIN = 3100000000000000001
BOT_GUILD = 2700000000000000001


async def interact(fake: FakeDiscord, command: str, **options: Any) -> Any:
    return await fake.interact(command, options, guild_id=BOT_GUILD, user_id=ADMIN, admin=True)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, workdir: Path, env: dict[str, str]) -> AsyncIterator[Any]:
    process = await BotProcess.start_ready(fake, workdir, {"CLASSIFY_COOLDOWN_SECONDS": "0", **env})
    try:
        yield process
    finally:
        status = await process.stop()
        assert status == 0, process.log()


@ASYNC
@pytest.mark.parametrize("outage", ["sqlite read-only", "postgresql stopped", "postgresql frozen"])
async def test_bot_apologises_during_an_outage_and_recovers_by_itself(
    fake: FakeDiscord, tmp_path: Path, cluster: Cluster, outage: str
) -> None:
    env = {"ZSL_STORE_TIMEOUT_SECONDS": str(STORE_TIMEOUT)}
    if outage.startswith("postgresql"):
        name = "bot_" + outage.split()[1]  # a database of each case's own
        env["ZSL_DATABASE_URL"] = cluster.url.rsplit("/", 1)[0] + "/" + name
        await asyncio.to_thread(cluster_database, cluster, name)
    database = tmp_path / "zsl.sqlite3"

    async with running_bot(fake, tmp_path, env) as bot:
        added = await interact(fake, "addclass", name="sports", description="football goal team")
        assert "Added the class" in added.text, added.text

        if outage.startswith("sqlite"):
            going = read_only(database, Path(f"{database}-wal"))
            going.__enter__()
            back: Callable[[], Any] = lambda: going.__exit__(None, None, None)  # noqa: E731
        elif outage == "postgresql frozen":
            stalling = frozen(cluster)
            stalling.__enter__()
            back = lambda: stalling.__exit__(None, None, None)  # noqa: E731
        else:
            await asyncio.to_thread(cluster.stop)
            back = cluster.start
        try:
            refused = [
                await interact(fake, "addclass", name="music", description="song album band"),
                await interact(fake, "removeclass", name="sports"),
                await interact(fake, "editclass", name="sports", description="tennis"),
                await interact(fake, "threshold", value=0.9),
            ]
            votes = await interact(fake, "votes")
            classified = await interact(fake, "classify", text="a late goal won the match")
        finally:
            await asyncio.to_thread(back)

        for exchange in refused:
            assert exchange.callback_type == DEFERRED_CHANNEL_MESSAGE
            assert exchange.callback_at - exchange.sent_at < DISCORD_SECONDS
            assert exchange.ephemeral
            assert "cannot be written right now" in exchange.text, exchange.text
            assert "try again" in exchange.text
        if outage.startswith("postgresql"):  # SQLite reads a read-only file well
            assert votes.callback_at - votes.sent_at < DISCORD_SECONDS
            assert "cannot be read right now" in votes.text, votes.text
        assert "**sports**" in classified.text

        for _ in range(60):
            again = await interact(fake, "addclass", name="music", description="song album band")
            if "Added the class" in again.text:
                break
            await asyncio.sleep(0.5)
        listing = await interact(fake, "classes")
        assert "Added the class" in again.text, again.text
        assert "**sports**: football goal team" in listing.text
        assert "**music**: song album band" in listing.text
        assert "tennis" not in listing.text
    assert "Traceback" not in bot.log()


def cluster_database(cluster: Cluster, name: str) -> None:
    import asyncpg

    async def create() -> None:
        db = await asyncpg.connect(cluster.url)
        try:
            if not await db.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await db.execute(f'CREATE DATABASE "{name}"')
        finally:
            await db.close()

    asyncio.run(create())


# -- the model ----------------------------------------------------------------------------------


def damaged_models(folder: Path, good: Path) -> dict[str, Path]:
    """A missing file, garbage, a truncated copy, a copy without its side files, a folder."""
    cases: dict[str, Path] = {"missing": folder / "missing" / "model.kv"}
    garbage = folder / "garbage.kv"
    garbage.write_bytes(b"\x80\x04this is not a model" * 100)
    cases["garbage"] = garbage
    for name in ("truncated", "alone"):
        copy = folder / name
        copy.mkdir()
        for part in good.parent.iterdir():
            if part.name.startswith(good.name) and (name == "truncated" or part == good):
                shutil.copy(part, copy / part.name)
        target = copy / good.name
        if name == "truncated":
            target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
        cases[name] = target
    text = folder / "vectors.txt"
    text.write_text("3 2\ngoal 0.1 0.2\nmatch 0.3\n", encoding="utf-8")
    cases["malformed text"] = text
    (folder / "a-folder.kv").mkdir()
    cases["a folder"] = folder / "a-folder.kv"
    return cases


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zsl.cli import main

    folder = tmp_path_factory.mktemp("model")
    source = folder / "small.txt"
    source.write_text(
        "".join(f"w{i} {i % 7 / 10} {i % 5 / 10} 0.5\n" for i in range(2000)), encoding="utf-8"
    )
    target = folder / "good" / "model.kv"
    target.parent.mkdir()
    assert main(["convert", str(source), str(target)]) == 0
    return target


@ASYNC
@pytest.mark.parametrize(
    "case", ["missing", "garbage", "truncated", "alone", "malformed text", "a folder"]
)
async def test_damaged_or_missing_model_stops_startup_with_one_sentence(
    fake: FakeDiscord, tmp_path: Path, good_model: Path, case: str
) -> None:
    model = damaged_models(tmp_path, good_model)[case]

    process = await BotProcess.start(fake, tmp_path, {"ZSL_MODEL": str(model)})
    status = await asyncio.wait_for(process.process.wait(), 120)

    lines = [line for line in process.log().splitlines() if line.strip()]
    assert status == 2, process.log()
    assert len(lines) == 1, process.log()
    assert "Traceback" not in lines[0]
    assert lines[0].rstrip().endswith("."), lines[0]
    assert model.name in lines[0] or str(model.parent) in lines[0], lines[0]


def test_outage_helpers_really_refuse_writes(tmp_path: Path) -> None:
    """The read-only helper blocks even root, or the tests above would prove nothing."""
    target = tmp_path / "file"
    target.write_text("x")

    with read_only(target), pytest.raises(PermissionError):
        target.write_text("y")

    assert target.read_text() == "x"
    assert os.access(target, os.W_OK)
