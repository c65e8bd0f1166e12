"""Concurrency: many mixed calls at once end exactly as the same calls one after another.

Per guild, the service's lock is first come, first served, so the concurrent run and a serial
replay of the same calls in the same order must give the same outcome for every write and the
same final registries (a lost update would show as a difference). Every classify must see one
whole registry that really existed, never a mix of two. With two services on one database,
the database is the arbiter of unique names and of the class limit.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.reliability.support import assert_plain
from zsl import (
    ClassDefinition,
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    Encoder,
    Limits,
    NoClassesError,
    WordVectors,
    ZeroShotService,
    ZslError,
)
from zsl.store import open_store

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILDS = 30
OPS_PER_GUILD = 14
LIMITS = Limits(classes_per_guild=5)
TOPICS = {
    "sports": "football match team goal",
    "music": "song album band concert",
    "politics": "election government vote minister",
    "cooking": "recipe bake oven kitchen",
    "weather": "rain snow storm forecast",
    "space": "planet rocket orbit astronaut",
    "money": "bank loan market price",
}
TEXTS = [
    "what a goal in the last minute",
    "the band played their new song",
    "the minister lost the vote",
    "snow and rain all week",
]


@dataclass(frozen=True)
class Op:
    guild_id: int
    kind: str
    args: tuple[Any, ...]


def mixed_ops(seed: int) -> list[Op]:
    """A fixed random mix of calls over many guilds, interleaved across guilds."""
    rng = random.Random(seed)
    names = list(TOPICS)
    per_guild = []
    for g in range(GUILDS):
        guild_id = 5_000 + g
        ops = []
        for _ in range(OPS_PER_GUILD):
            kind = rng.choices(
                ["add", "edit", "remove", "threshold", "classify"], [35, 15, 15, 10, 25]
            )[0]
            name = rng.choice(names)
            if kind == "add":
                args: tuple[Any, ...] = (name, TOPICS[name])
            elif kind == "edit":
                args = (name, rng.choice([None, *names]), rng.choice([None, *TOPICS.values()]))
            elif kind == "remove":
                args = (name.upper(),)
            elif kind == "threshold":
                args = (rng.choice([None, 0.1, 0.9, 1.5]),)
            else:
                args = (rng.choice(TEXTS),)
            ops.append(Op(guild_id, kind, args))
        per_guild.append(ops)
    interleaved = [op for round_ in zip(*per_guild, strict=True) for op in round_]
    rng.shuffle(interleaved)
    # Keep each guild's own order (the shuffle only mixes guilds).
    queues = {ops[0].guild_id: iter(ops) for ops in per_guild}
    return [next(queues[op.guild_id]) for op in interleaved]


async def apply(service: ZeroShotService, op: Op) -> Any:
    """The call's outcome: the result, or the type of the ZslError (checked to be plain)."""
    try:
        if op.kind == "add":
            return await service.add_class(op.guild_id, *op.args)
        if op.kind == "edit":
            name, new_name, description = op.args
            if new_name is None and description is None:
                description = TOPICS["sports"]
            return await service.edit_class(
                op.guild_id, name, new_name=new_name, description=description
            )
        if op.kind == "remove":
            return await service.remove_class(op.guild_id, *op.args)
        if op.kind == "threshold":
            return await service.set_threshold(op.guild_id, *op.args)
        result = await service.classify(op.guild_id, op.args[0], top_k=25)
        return frozenset(p.name for p in result.predictions)
    except ZslError as exc:
        assert_plain(exc)
        return type(exc)


async def registries(service: ZeroShotService) -> dict[int, Any]:
    return {
        g: (await service.classes(g), await service.threshold(g))
        for g in await service.guild_ids()
        if await service.classes(g) or await service.threshold(g) != 0.5
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def encoder(glove: WordVectors) -> Encoder:
    return await asyncio.to_thread(Encoder, glove)


async def open_service(encoder: Encoder, url: str, limits: Limits = LIMITS) -> ZeroShotService:
    service = ZeroShotService(encoder, await open_store(url), limits=limits)
    await service.reload()
    await service.store.subscribe(service.reload, service.reload)
    return service


@pytest_asyncio.fixture(loop_scope="module")
async def two_urls(
    store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    """The backend under test for the concurrent run, and a separate SQLite for the replay."""
    yield store_url, f"sqlite:///{tmp_path_factory.mktemp('serial')}/zsl.sqlite3"


async def test_concurrent_calls_end_as_the_same_calls_one_by_one(
    encoder: Encoder, two_urls: tuple[str, str]
) -> None:
    url, serial_url = two_urls
    ops = mixed_ops(seed=6)
    concurrent = await open_service(encoder, url)
    serial = await open_service(encoder, serial_url)
    try:
        # Serially: every write's outcome, and every registry each guild went through.
        expected: list[Any] = []
        seen: dict[int, set[frozenset[str]]] = {g: {frozenset()} for g in range(5_000, 5_100)}
        for op in ops:
            expected.append(await apply(serial, op))
            seen[op.guild_id].add(frozenset(d.name for d in await serial.classes(op.guild_id)))

        outcomes = await asyncio.gather(*(apply(concurrent, op) for op in ops))

        for op, got, want in zip(ops, outcomes, expected, strict=True):
            if op.kind == "classify":
                # A whole registry that existed at some moment, never a half-built one.
                if got is not NoClassesError:
                    assert isinstance(got, frozenset), (op, got)
                    assert got in seen[op.guild_id], (op, got)
            else:
                assert got == want, op
        serial_registries = await registries(serial)
        assert await registries(concurrent) == serial_registries
        assert await concurrent.store.load_all() == await serial.store.load_all()
        assert await concurrent.store.integrity_check() == []
    finally:
        await concurrent.close()
        await serial.close()

    reopened = await open_service(encoder, url)
    try:
        assert await registries(reopened) == serial_registries
    finally:
        await reopened.close()
    writes = sum(op.kind != "classify" for op in ops)
    assert len(ops) == GUILDS * OPS_PER_GUILD
    assert writes > 250


NAMES = [f"{topic} {n}" for n in ("one", "two") for topic in TOPICS]  # 14 names
SHARED_LIMIT = Limits(classes_per_guild=8)


async def attempt(label: str, call: Any) -> tuple[str, Any]:
    try:
        return label, await call
    except ZslError as exc:
        assert_plain(exc)
        return label, type(exc)


async def converged(services: list[ZeroShotService], guild: int, sqlite: bool) -> Any:
    """Wait until every service shows what the database holds; return that."""
    stored = (await services[0].store.load_guild(guild)).classes
    # PostgreSQL tells the other processes by NOTIFY; a SQLite file belongs to one process by
    # design, so there the services reload themselves.
    if sqlite:
        for service in services:
            await service.reload(guild)
    for _ in range(200):
        if all([await service.classes(guild) == stored for service in services]):
            break
        await asyncio.sleep(0.05)
    for service in services:
        assert await service.classes(guild) == stored
    return stored


async def test_two_services_on_one_database_share_one_truth(
    encoder: Encoder, store_url: str
) -> None:
    guild = 7_000
    first = await open_service(encoder, store_url, SHARED_LIMIT)
    second = await open_service(encoder, store_url, SHARED_LIMIT)
    try:
        calls = [
            attempt("first", first.add_class(guild, name, TOPICS[name.split()[0]]))
            for name in NAMES
        ] + [
            attempt("second", second.add_class(guild, name, TOPICS[name.split()[0]]))
            for name in reversed(NAMES)
        ]
        random.Random(7).shuffle(calls)

        outcomes = await asyncio.gather(*calls)
        stored = await converged([first, second], guild, store_url.startswith("sqlite"))

        added = [o.name for _, o in outcomes if not isinstance(o, type)]
        refused = {o for _, o in outcomes if isinstance(o, type)}
        assert len(stored) == SHARED_LIMIT.classes_per_guild
        assert sorted(added) == sorted(d.name for d in stored), "each class acknowledged once"
        assert refused == {DuplicateClassError, ClassLimitError}
        assert await first.store.integrity_check() == []
    finally:
        await first.close()
        await second.close()


async def test_two_services_removing_the_same_class_remove_it_once(
    encoder: Encoder, store_url: str
) -> None:
    guild = 7_001
    first = await open_service(encoder, store_url, SHARED_LIMIT)
    second = await open_service(encoder, store_url, SHARED_LIMIT)
    try:
        for name in ("sports", "music"):
            await first.add_class(guild, name, TOPICS[name])
        await second.reload(guild)

        outcomes = await asyncio.gather(
            attempt("first", first.remove_class(guild, "sports")),
            attempt("second", second.remove_class(guild, "SPORTS")),
            attempt("second", second.edit_class(guild, "music", description="guitar song")),
            attempt("first", first.edit_class(guild, "music", description="piano song")),
        )
        stored = await converged([first, second], guild, store_url.startswith("sqlite"))

        removals = [o for _, o in outcomes[:2]]
        assert ClassNotFoundError in removals
        assert [r for r in removals if r is not ClassNotFoundError] == [
            ClassDefinition("sports", TOPICS["sports"])
        ]
        assert [d.name for d in stored] == ["music"]
        assert stored[0].description in ("guitar song", "piano song")
        assert await first.store.integrity_check() == []
    finally:
        await first.close()
        await second.close()
