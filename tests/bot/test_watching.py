"""The watcher's decisions, front-independent: the rate limit per guild and its window, and
only the guilds this process serves (its shards) are acted on."""

from __future__ import annotations

import pytest

import zsl
from bot.watching import RateLimit, Watcher


def test_the_rate_limit_is_per_guild_and_per_minute() -> None:
    now = [0.0]
    limit = RateLimit(2, clock=lambda: now[0])

    first = [limit.allow(1) for _ in range(3)]
    other = limit.allow(2)
    now[0] = 59.9
    same_minute = limit.allow(1)
    now[0] = 60.0
    next_minute = [limit.allow(1) for _ in range(3)]

    assert first == [True, True, False]
    assert other is True
    assert same_minute is False
    assert next_minute == [True, True, False]


@pytest.mark.asyncio
async def test_only_the_guilds_this_process_serves_are_acted_on(
    tiny: zsl.WordVectors, db_url: str
) -> None:
    shared = await zsl.ZeroShotService.open(tiny, db_url)
    await shared.add_class(1, "sports", "football goal team")
    await shared.add_class(2, "sports", "football goal team")
    await shared.watch(zsl.Watch(1, 10, "log", 11))
    await shared.watch(zsl.Watch(2, 20, "log", 21))
    await shared.close()
    service = await zsl.ZeroShotService.open(tiny, db_url, owns=lambda guild: guild == 1)
    try:
        watcher = Watcher(service, per_minute=10)
        await watcher.load()

        served = await watcher.decide(zsl.Watch(1, 10, "log", 11), "football goal")
        elsewhere = await watcher.decide(zsl.Watch(2, 20, "log", 21), "football goal")
    finally:
        await service.close()

    assert [w.channel_id for w in watcher.watches(1)] == [10]
    assert watcher.watches(2) == []
    assert watcher.active(20) is None
    assert served is not None
    assert served.class_name == "sports"
    assert elsewhere is None
