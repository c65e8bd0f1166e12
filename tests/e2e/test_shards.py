"""Two real ``python -m bot`` processes, one shard each, sharing one PostgreSQL registry.

Discord sends a guild's interactions to its shard, ``(guild_id >> 22) % shard_count``. When
shards are rebalanced (more processes, a rolling restart) a guild moves to another process,
which must already know everything written through the first one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from tests.e2e.conftest import ADMIN, BotProcess, add_class
from tests.e2e.fakediscord import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")

SHARD_0_GUILD = (2 << 22) | 1  # (guild_id >> 22) % 2 == 0
SHARD_1_GUILD = (3 << 22) | 1  # ... == 1
users = iter(range(3400000000000000000, 3500000000000000000))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shards(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FakeDiscord, list[BotProcess]]]:
    name = f"zsl_shards_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pg_url = postgres_server.rsplit("/", 1)[0] + "/" + name
    fake = FakeDiscord()
    await fake.start()
    processes: list[BotProcess] = []
    try:
        for shard in (0, 1):
            workdir: Path = tmp_path_factory.mktemp(f"shard{shard}")
            environment = {"ZSL_DATABASE_URL": pg_url, "SHARD_COUNT": "2", "SHARD_IDS": str(shard)}
            processes.append(await BotProcess.start(fake, workdir, environment))
        try:
            await fake.wait_shards(2)
        except TimeoutError as exc:
            logs = "\n".join(p.log() for p in processes)
            raise AssertionError(f"the shards never connected ({exc}):\n{logs}") from None
        yield fake, processes
        for process in processes:
            assert await process.stop() == 0, process.log()
    finally:
        for process in processes:
            if process.process.returncode is None:
                process.process.kill()
                await process.process.wait()
        await fake.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def classify(
    fake: FakeDiscord, guild_id: int, text: str, shard: int | None = None
) -> list[str]:
    """The ranked class names of the reply, best first."""
    exchange = await fake.interact(
        "classify", {"text": text}, guild_id=guild_id, user_id=next(users), shard=shard
    )
    embeds = exchange.message.get("embeds") or [{}]  # none: e.g. "no classes yet"
    description = embeds[0].get("description") or ""
    return [line.split("**")[1] for line in description.splitlines() if line.startswith("**")]


async def within_a_second(
    fake: FakeDiscord, guild_id: int, text: str, shard: int, expected: list[str]
) -> list[str]:
    """Classify through ``shard`` until the ranking is ``expected`` (in any order), for 1 s.

    A write reaches the other processes by NOTIFY: within a second, not at once.
    """
    deadline = time.monotonic() + 1.0
    while True:
        ranked = await classify(fake, guild_id, text, shard)
        if sorted(ranked) == sorted(expected) or time.monotonic() > deadline:
            return ranked
        await asyncio.sleep(0.05)


async def test_each_process_identifies_as_its_own_shard(
    shards: tuple[FakeDiscord, list[BotProcess]],
) -> None:
    fake, _ = shards

    assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]


async def test_a_guild_that_moves_to_the_other_process_keeps_its_classes(
    shards: tuple[FakeDiscord, list[BotProcess]],
) -> None:
    fake, (first, second) = shards
    for guild_id in (SHARD_0_GUILD, SHARD_1_GUILD):
        await add_class(fake, guild_id, "sports", "football match team goal")
        await add_class(fake, guild_id, "music", "song album band concert")
    added_at = time.monotonic()

    # Each guild's own shard answers; then each guild moves to the other process.
    at_home = await classify(fake, SHARD_0_GUILD, "what a goal in the last minute")
    both = ["sports", "music"]
    moved_0 = await within_a_second(fake, SHARD_0_GUILD, "their new album is out", 1, both)
    moved_1 = await within_a_second(fake, SHARD_1_GUILD, "a goal in the last minute", 0, both)
    answered_within = time.monotonic() - added_at

    assert at_home[0] == "sports"
    assert moved_0[0] == "music"
    assert moved_1[0] == "sports"
    assert answered_within < 3
    # Each write went through the guild's own process only.
    assert f"guild {SHARD_0_GUILD}: added class" in first.log()
    assert f"guild {SHARD_0_GUILD}: added class" not in second.log()
    assert f"guild {SHARD_1_GUILD}: added class" in second.log()


async def test_writes_through_one_process_reach_the_other_within_a_second(
    shards: tuple[FakeDiscord, list[BotProcess]],
) -> None:
    fake, _ = shards
    guild_id = SHARD_0_GUILD + (2 << 22)  # another guild of shard 0

    await add_class(fake, guild_id, "cats", "cat kitten meow purr")
    await add_class(fake, guild_id, "cars", "car engine drive")
    text = "my kitten purrs all day"
    before = await within_a_second(fake, guild_id, text, 1, ["cats", "cars"])
    removed = await fake.interact(
        "removeclass", {"name": "cats"}, guild_id=guild_id, user_id=ADMIN, admin=True
    )
    after = await within_a_second(fake, guild_id, text, 1, ["cars"])

    assert before == ["cats", "cars"]
    assert "Removed" in removed.text, removed.text
    assert after == ["cars"]
