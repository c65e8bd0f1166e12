"""The Right / Wrong controls under a result: they answer after a restart and after they expire.

Each test runs its own ``python -m bot`` processes against the fake Discord.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot import messages
from tests.e2e.conftest import ADMIN, BotProcess, add_class
from tests.e2e.fakediscord import EPHEMERAL, UPDATE_MESSAGE, Exchange, FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUILD = 2600000000000000001
MEMBER = 3600000000000000001
BUTTON, SELECT = 2, 3


async def start(fake: FakeDiscord, workdir: Path, **env: str) -> BotProcess:
    return await BotProcess.start_ready(fake, workdir, {"CLASSIFY_COOLDOWN_SECONDS": "0", **env})


async def classified(fake: FakeDiscord, guild: int, text: str) -> Exchange:
    result = await fake.interact("classify", {"text": text}, guild_id=guild, user_id=MEMBER)
    assert result.message["components"], result.message
    return result


def assert_expired(click: Exchange, result: Exchange) -> None:
    """The member reads the sentence, alone, and the controls are gone from the result."""
    assert click.callback_type == UPDATE_MESSAGE
    assert click.callback is not None
    assert click.callback["data"]["components"] == []
    assert click.text == messages.FEEDBACK_EXPIRED
    assert int(click.followups[-1]["flags"]) & EPHEMERAL
    assert result.message["components"] == []


async def examples(fake: FakeDiscord, guild: int) -> str:
    listed = await fake.interact(
        "examples", {"name": "sports"}, guild_id=guild, user_id=ADMIN, admin=True
    )
    return listed.text


async def test_controls_sent_before_a_restart_say_they_expired(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    before = await start(fake, tmp_path)
    try:
        await add_class(fake, GUILD, "sports", "football match team goal league")
        await add_class(fake, GUILD, "music", "song album band concert guitar")
        first = await classified(fake, GUILD, "the striker scored a late goal")
        second = await classified(fake, GUILD, "the team won the football league match")
    finally:
        assert await before.stop() == 0, before.log()

    after = await start(fake, tmp_path)
    try:
        right = await fake.press(first, BUTTON, guild_id=GUILD, user_id=ADMIN, admin=True)
        wrong = await fake.press(second, SELECT, guild_id=GUILD, user_id=MEMBER, values=["music"])
        taught = await examples(fake, GUILD)
        votes = await fake.interact("votes", guild_id=GUILD, user_id=ADMIN, admin=True)
    finally:
        assert await after.stop() == 0, after.log()

    assert_expired(right, first)
    assert_expired(wrong, second)
    assert "no examples yet" in taught
    assert messages.NO_VOTES in votes.text
    assert "Traceback" not in after.log()


async def test_controls_past_feedback_minutes_say_they_expired(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild = GUILD + 1
    process = await start(fake, tmp_path, FEEDBACK_MINUTES="0.05")  # 3 seconds
    try:
        await add_class(fake, guild, "sports", "football match team goal league")
        await add_class(fake, guild, "music", "song album band concert guitar")
        early = await classified(fake, guild, "the striker scored a late goal")
        late = await classified(fake, guild, "the team won the football league match")

        in_time = await fake.press(early, BUTTON, guild_id=guild, user_id=ADMIN, admin=True)
        await asyncio.sleep(4.0)
        too_late = await fake.press(late, BUTTON, guild_id=guild, user_id=ADMIN, admin=True)
        taught = await examples(fake, guild)
    finally:
        assert await process.stop() == 0, process.log()

    assert 'Thanks! "sports" learned from this text' in in_time.text
    assert_expired(too_late, late)
    assert "the striker scored a late goal" in taught
    assert "league match" not in taught


def custom_result_id(result: Exchange, component_type: int) -> str:
    """The result id inside a control's custom id (zsl:right:<id>:<expiry>)."""
    components = [c for row in result.message["components"] for c in row["components"]]
    custom_id = next(c["custom_id"] for c in components if c["type"] == component_type)
    return str(custom_id.split(":")[2])


async def test_one_member_has_one_vote_per_result_and_evicts_nobody(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    guild, honest, zealot = GUILD + 2, MEMBER + 1, MEMBER + 2
    process = await start(fake, tmp_path, ZSL_MAX_VOTES="20", VOTE_COOLDOWN_SECONDS="0")
    try:
        await add_class(fake, guild, "sports", "football match team goal league")
        await add_class(fake, guild, "music", "song album band concert guitar")
        first = await classified(fake, guild, "the striker scored a late goal")
        second = await classified(fake, guild, "the team won the football league match")
        await fake.press(first, SELECT, guild_id=guild, user_id=honest, values=["music"])

        clicks = [
            await fake.press(second, BUTTON, guild_id=guild, user_id=zealot) for _ in range(20)
        ]
        changed = await fake.press(second, SELECT, guild_id=guild, user_id=zealot, values=["music"])
        votes = await fake.interact("votes", guild_id=guild, user_id=ADMIN, admin=True)
    finally:
        assert await process.stop() == 0, process.log()
    with sqlite3.connect(tmp_path / "zsl.sqlite3") as db:
        stored = db.execute("SELECT user_id, result FROM votes ORDER BY id").fetchall()

    assert all(messages.VOTE_KEPT in click.text for click in [*clicks, changed])
    lines = [line for line in votes.text.splitlines() if line.startswith("`#")]
    assert len(lines) == 2, votes.text
    assert f"<@{honest}> sports \u2192 music" in votes.text  # the honest vote is still there
    assert f"<@{zealot}> sports \u2192 music" in votes.text  # their last click counts
    assert stored == [
        (honest, custom_result_id(first, SELECT)),
        (zealot, custom_result_id(second, BUTTON)),
    ]


async def test_votes_are_rate_limited_per_member(fake: FakeDiscord, tmp_path: Path) -> None:
    guild, member, other = GUILD + 3, MEMBER + 3, MEMBER + 4
    process = await start(fake, tmp_path, VOTE_COOLDOWN_SECONDS="30")
    try:
        await add_class(fake, guild, "sports", "football match team goal league")
        await add_class(fake, guild, "music", "song album band concert guitar")
        first = await classified(fake, guild, "the striker scored a late goal")
        second = await classified(fake, guild, "the team won the football league match")

        kept = await fake.press(first, BUTTON, guild_id=guild, user_id=member)
        refused = await fake.press(second, BUTTON, guild_id=guild, user_id=member)
        someone_else = await fake.press(second, BUTTON, guild_id=guild, user_id=other)
        admin = await fake.press(second, BUTTON, guild_id=guild, user_id=ADMIN, admin=True)
        votes = await fake.interact("votes", guild_id=guild, user_id=ADMIN, admin=True)
    finally:
        assert await process.stop() == 0, process.log()

    assert messages.VOTE_KEPT in kept.text
    assert refused.ephemeral
    assert "You are giving feedback quickly. Try again in" in refused.text
    assert messages.VOTE_KEPT in someone_else.text
    assert 'Thanks! "sports" learned from this text' in admin.text  # teaching is not a vote
    assert votes.text.count(f"<@{member}>") == 1
    assert votes.text.count(f"<@{other}>") == 1
