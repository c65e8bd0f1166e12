"""Watched channels through the real bot process and the fake Discord: new messages get the
class's emoji or a log line, within the server's rate limit, and a lost permission stops the
watch once. Each test runs its own ``python -m bot`` (MESSAGE_CONTENT_INTENT on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import messages
from tests.e2e.conftest import ADMIN, BotProcess, add_class
from tests.e2e.fakediscord import ADD_REACTIONS, FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2700000000000000001
MEMBER = 3700000000000000001
BUG = "\U0001f41b"
QUESTION = "\u2753"
CRASH = "The app crashes with an exception error every time I open it, the window freezes"
OFF_TOPIC = "lovely sunny weather for a picnic with grandma in the park"
INTENT = {"MESSAGE_CONTENT_INTENT": "true", "CLASSIFY_COOLDOWN_SECONDS": "0"}


async def start(fake: FakeDiscord, workdir: Path, **env: str) -> BotProcess:
    return await BotProcess.start_ready(fake, workdir, {**INTENT, **env})


async def server(fake: FakeDiscord, guild: int) -> tuple[int, int]:
    """A guild with a #support and a #log channel and two classes, one with an emoji."""
    support, log = guild + 10, guild + 11
    await fake.add_guild(guild, {support: "support", log: "log"})
    return support, log


async def classes(fake: FakeDiscord, guild: int) -> None:
    added = await fake.interact(
        "addclass",
        {"name": "bug", "description": "crash error exception broken freeze bug", "emoji": BUG},
        guild_id=guild,
        user_id=ADMIN,
        admin=True,
    )
    assert "Added the class" in added.text, added.text
    await add_class(fake, guild, "question", "question how to help what why")


async def watch(fake: FakeDiscord, guild: int, **options: object) -> str:
    answer = await fake.interact("watch", options, guild_id=guild, user_id=ADMIN, admin=True)
    return answer.text


def reactions_on(fake: FakeDiscord, message: int) -> list[str]:
    return [emoji for _, m, emoji in fake.reactions if m == message]


async def test_a_crash_gets_the_bug_emoji_and_a_log_line_and_off_topic_gets_nothing(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    support, log = await server(fake, GUILD)
    process = await start(fake, tmp_path)
    try:
        await classes(fake, GUILD)
        reacting = await watch(fake, GUILD, channel=support, action="react")
        edited = await fake.interact(
            "editclass",
            {"name": "question", "emoji": QUESTION},
            guild_id=GUILD,
            user_id=ADMIN,
            admin=True,
        )
        off_topic = await fake.post(GUILD, support, OFF_TOPIC)
        edited_later = await fake.post(GUILD, support, OFF_TOPIC + " too")
        await fake.edit(GUILD, support, edited_later, CRASH)  # edits are not read
        crash = await fake.post(GUILD, support, CRASH)
        from_a_bot = await fake.post(GUILD, support, CRASH, author_id=5555, bot=True)
        await fake.wait_for(lambda: reactions_on(fake, crash))
        logging = await watch(fake, GUILD, channel=support, action="log", log_channel=log)
        logged = await fake.post(GUILD, support, CRASH + " again")
        await fake.wait_for(lambda: fake.sent.get(log))
        listed = await fake.interact("watches", guild_id=GUILD, user_id=ADMIN, admin=True)
        await asyncio.sleep(0.5)  # anything still on its way would arrive now
    finally:
        assert await process.stop() == 0, process.log()

    assert "gets the class's emoji" in reacting
    assert '"question"' in reacting  # told which classes have no emoji
    assert "Updated the class" in edited.text
    assert reactions_on(fake, crash) == [BUG]
    assert reactions_on(fake, off_topic) == []  # closest to "question", but below the threshold
    assert reactions_on(fake, from_a_bot) == []
    assert reactions_on(fake, edited_later) == []
    assert f"gets a line in <#{log}>" in logging
    [line] = fake.sent[log]
    assert line["content"].startswith("**bug** ")
    assert f"in <#{support}>: " in line["content"]
    assert line["content"].endswith(f"/channels/{GUILD}/{support}/{logged}")
    assert line["allowed_mentions"] == {"parse": []}
    assert reactions_on(fake, logged) == []
    assert listed.text == f"<#{support}>: log lines in <#{log}>"


async def test_a_member_without_manage_server_cannot_set_up_a_watch(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 1
    support, _ = await server(fake, guild)
    process = await start(fake, tmp_path)
    try:
        await classes(fake, guild)
        refused = await fake.interact(
            "watch", {"channel": support, "action": "react"}, guild_id=guild, user_id=MEMBER
        )
        crash = await fake.post(guild, support, CRASH)
        await asyncio.sleep(1.0)
    finally:
        assert await process.stop() == 0, process.log()

    assert refused.text == messages.MISSING_PERMISSION
    assert refused.ephemeral
    assert reactions_on(fake, crash) == []


async def test_without_the_intent_watch_says_how_to_enable_it(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 2
    support, _ = await server(fake, guild)
    process = await start(fake, tmp_path, MESSAGE_CONTENT_INTENT="false")
    try:
        refused = await watch(fake, guild, channel=support, action="react")
    finally:
        assert await process.stop() == 0, process.log()
    identify = fake.identifies[-1]

    assert refused == messages.INTENT_OFF
    assert identify["intents"] & (1 << 15) == 0  # the privileged intent is not asked for


async def test_setup_says_which_permission_is_missing_and_watches_nothing(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 3
    support, _log = await server(fake, guild)
    await fake.deny(guild, support, ADD_REACTIONS)
    process = await start(fake, tmp_path)
    try:
        await classes(fake, guild)
        refused = await watch(fake, guild, channel=support, action="react")
        listed = await fake.interact("watches", guild_id=guild, user_id=ADMIN, admin=True)
    finally:
        assert await process.stop() == 0, process.log()
    identify = fake.identifies[-1]

    assert refused == messages.watch_lacks([(f"<#{support}>", "add_reactions")])
    assert "Add Reactions in <#" in refused
    assert listed.text == messages.NO_WATCHES
    assert identify["intents"] & (1 << 15)  # asked for, as the setting says


async def test_a_watch_survives_a_restart(fake: FakeDiscord, tmp_path: Path) -> None:
    guild = GUILD + 4
    support, _ = await server(fake, guild)
    before = await start(fake, tmp_path)
    try:
        await classes(fake, guild)
        await watch(fake, guild, channel=support, action="react")
    finally:
        assert await before.stop() == 0, before.log()

    after = await start(fake, tmp_path)
    try:
        crash = await fake.post(guild, support, CRASH)
        await fake.wait_for(lambda: reactions_on(fake, crash))
    finally:
        assert await after.stop() == 0, after.log()

    assert reactions_on(fake, crash) == [BUG]


async def test_a_lost_permission_stops_the_watch_with_one_note(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 5
    support, log = await server(fake, guild)
    process = await start(fake, tmp_path)
    try:
        await classes(fake, guild)
        await watch(fake, guild, channel=support, action="react", log_channel=log)
        await fake.deny(guild, support, ADD_REACTIONS)
        crashes = [await fake.post(guild, support, f"{CRASH} {n}") for n in range(5)]
        await fake.wait_for(lambda: fake.sent.get(log))
        await asyncio.sleep(1.0)  # the other messages have been seen by now
        listed = await fake.interact("watches", guild_id=guild, user_id=ADMIN, admin=True)
        later = await fake.post(guild, support, CRASH)
        await asyncio.sleep(0.5)
    finally:
        assert await process.stop() == 0, process.log()

    [note] = fake.sent[log]
    assert note["content"] == messages.watch_disabled_note(f"<#{support}>", "Add Reactions")
    assert note["allowed_mentions"] == {"parse": []}
    assert [m for m in [*crashes, later] if reactions_on(fake, m)] == []
    assert process.log().count("stopped watching channel") == 1
    assert "(stopped: I lost" in listed.text


async def test_a_burst_of_200_messages_respects_the_rate_limit(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 6
    support, _ = await server(fake, guild)
    process = await start(fake, tmp_path, AUTO_ACTIONS_PER_MINUTE="10")
    try:
        await classes(fake, guild)
        await watch(fake, guild, channel=support, action="react")
        burst = [await fake.post(guild, support, f"{CRASH} {n}") for n in range(200)]
        await fake.wait_for(lambda: len([m for m in burst if reactions_on(fake, m)]) >= 10)
        await asyncio.sleep(2.0)  # time for any reaction past the limit to show up
    finally:
        assert await process.stop() == 0, process.log()

    reacted = [m for m in burst if reactions_on(fake, m)]
    assert reacted == burst[:10]
    assert process.log().count("watched messages this minute") == 1
