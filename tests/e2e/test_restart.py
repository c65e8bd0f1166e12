"""Restarts of the real bot process: durable classes, clean signals, hashed command sync."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bot import messages
from tests.e2e.conftest import BotProcess
from tests.e2e.fakediscord import APPLICATION_ID, FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2200000000000000001
DEV_GUILD = 2200000000000000009
ADMIN = 3100000000000000001


async def start(fake: FakeDiscord, workdir: Path, *args: str, **env: str) -> BotProcess:
    return await BotProcess.start_ready(fake, workdir, env, args)


def sync_paths(fake: FakeDiscord) -> list[str]:
    return [r.path for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]


async def test_classes_survive_a_restart_and_sync_happens_only_when_needed(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    first = await start(fake, tmp_path)
    added = await fake.interact(
        "addclass",
        {"name": "sports", "description": "football match team goal"},
        guild_id=GUILD,
        user_id=ADMIN,
        admin=True,
    )
    first_status = await first.stop(signal.SIGINT)

    second = await start(fake, tmp_path)
    result = await fake.interact(
        "classify", {"text": "what a goal in the match"}, guild_id=GUILD, user_id=ADMIN
    )
    second_status = await second.stop(signal.SIGTERM)

    forced = await start(fake, tmp_path, "--sync")
    forced_status = await forced.stop()

    assert "Added the class" in added.text
    assert first_status == 0, first.log()
    assert "closing the gateway, the service and the store" in first.log()
    assert second_status == 0, second.log()
    assert "**sports**" in result.text
    assert "commands unchanged" in second.log()
    assert forced_status == 0, forced.log()
    global_sync = f"/applications/{APPLICATION_ID}/commands"
    assert sync_paths(fake) == [global_sync, global_sync], "fresh store, then only --sync"


async def test_dev_guild_gets_its_own_sync_and_guild_scoped_commands_work(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    before = len(sync_paths(fake))
    process = await start(fake, tmp_path, DEV_GUILD_ID=str(DEV_GUILD))
    await fake.interact(
        "addclass",
        {"name": "music", "description": "song album band"},
        guild_id=DEV_GUILD,
        user_id=ADMIN,
        admin=True,
    )

    result = await fake.interact(
        "classify", {"text": "the band played a song"}, guild_id=DEV_GUILD, user_id=ADMIN
    )
    status = await process.stop()

    assert sync_paths(fake)[before:] == [
        f"/applications/{APPLICATION_ID}/guilds/{DEV_GUILD}/commands"
    ]
    assert "**music**" in result.text
    assert status == 0, process.log()


async def test_rejected_token_stops_with_one_sentence(fake: FakeDiscord, tmp_path: Path) -> None:
    process = await BotProcess.start(fake, tmp_path, {"DISCORD_TOKEN": "not-the-token"})

    status = await process.process.wait()

    assert status == 2
    assert messages.TOKEN_REJECTED in process.log()
    assert "Traceback" not in process.log()


async def test_refused_command_sync_is_logged_and_retried_on_the_next_start(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    fake.refuse_sync = True
    try:
        refused = await start(fake, tmp_path)
        refused_status = await refused.stop()
    finally:
        fake.refuse_sync = False
    before = len(sync_paths(fake))

    retried = await start(fake, tmp_path)
    retried_status = await retried.stop()

    assert refused_status == 0, refused.log()
    assert "command sync (global) failed" in refused.log()
    assert retried_status == 0, retried.log()
    assert len(sync_paths(fake)) == before + 1, "no hash was stored for the failed sync"


async def test_unreachable_discord_stops_with_one_sentence(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    closed_port = "http://127.0.0.1:9/api/v10"  # the discard port: nothing listens there
    process = await BotProcess.start(fake, tmp_path, {"DISCORD_API_BASE": closed_port})

    status = await process.process.wait()

    assert status == 1
    assert "Cannot reach Discord (" in process.log()
    assert "Traceback" not in process.log()
