"""The cog's own logic without Discord: error replies, incident ids, autocomplete, cooldown."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from discord import app_commands

import zsl
from bot import messages
from bot.cogs import zeroshot
from bot.cogs.zeroshot import Cooldown, ZeroShotCog, answer_in_time, first_part
from bot.commands import COMMANDS
from bot.settings import Settings

GUILD = 42


class FakeResponse:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def is_done(self) -> bool:
        return bool(self.sent)

    async def send_message(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)

    async def defer(self, **kwargs: Any) -> None:
        self.sent.append({"deferred": True, **kwargs})


class FakeInteraction:
    """Just what the cog touches on a discord.Interaction."""

    def __init__(self, guild_id: int | None = GUILD) -> None:
        self.id = 1
        self.guild_id = guild_id
        self.command = None
        self.response = FakeResponse()


@pytest_asyncio.fixture
async def cog(tiny: zsl.WordVectors, db_url: str) -> AsyncIterator[ZeroShotCog]:
    service = await zsl.ZeroShotService.open(tiny, db_url)
    yield ZeroShotCog(service, Settings())
    await service.close()


def sent(interaction: FakeInteraction) -> dict[str, Any]:
    assert len(interaction.response.sent) == 1
    reply = interaction.response.sent[0]
    assert reply["ephemeral"] is True
    assert reply["allowed_mentions"].to_dict() == {"parse": []}
    return reply


class TestErrors:
    @pytest.mark.asyncio
    async def test_unexpected_error_is_logged_and_shown_with_the_same_incident_id(
        self, cog: ZeroShotCog, caplog: pytest.LogCaptureFixture
    ) -> None:
        interaction = FakeInteraction()
        error = app_commands.CommandInvokeError(
            cog.slash_commands["classify"], RuntimeError("disk on fire")
        )

        with caplog.at_level(logging.ERROR, logger="bot.cogs.zeroshot"):
            await cog.handle_error(interaction, error)  # type: ignore[arg-type]

        content = sent(interaction)["content"]
        incident = re.search(r"incident ([0-9a-f]{8})", content)
        assert incident is not None
        assert content == messages.unexpected_error(incident.group(1))
        assert "disk on fire" not in content
        record = caplog.records[-1]
        assert incident.group(1) in record.getMessage()
        assert record.exc_info is not None
        assert "disk on fire" in str(record.exc_info[1])

    @pytest.mark.asyncio
    async def test_core_refusal_is_shown_as_its_sentence_escaped(self, cog: ZeroShotCog) -> None:
        interaction = FakeInteraction()
        error = app_commands.CommandInvokeError(
            cog.slash_commands["removeclass"], zsl.ClassNotFoundError("@everyone *x*")
        )

        await cog.handle_error(interaction, error)  # type: ignore[arg-type]

        assert sent(interaction)["content"] == (
            "There is no class named '@\u200beveryone \\*x\\*'. /classes lists the existing ones."
        )

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (app_commands.NoPrivateMessage(), messages.DM_REFUSED),
            (app_commands.MissingPermissions(["manage_guild"]), messages.MISSING_PERMISSION),
            (
                app_commands.CommandOnCooldown(app_commands.Cooldown(1, 3), 2.5),
                messages.cooldown(2.5),
            ),
        ],
    )
    @pytest.mark.asyncio
    async def test_check_failures_use_the_plain_sentences(
        self, cog: ZeroShotCog, error: app_commands.AppCommandError, expected: str
    ) -> None:
        interaction = FakeInteraction()

        await cog.handle_error(interaction, error)  # type: ignore[arg-type]

        assert sent(interaction)["content"] == expected

    @pytest.mark.asyncio
    async def test_commands_refuse_direct_messages(self, cog: ZeroShotCog) -> None:
        # guild_only tells Discord; every command and the context menu make sure themselves.
        for spec in COMMANDS:
            with pytest.raises(app_commands.NoPrivateMessage):
                await cog.run(spec, FakeInteraction(guild_id=None), {})  # type: ignore[arg-type]
        with pytest.raises(app_commands.NoPrivateMessage):
            await cog.classify_message(FakeInteraction(guild_id=None), None)  # type: ignore[arg-type]


class TestAutocomplete:
    @pytest.mark.asyncio
    async def test_matches_containing_the_typed_text_prefix_matches_first(
        self, cog: ZeroShotCog
    ) -> None:
        for name in ("music", "sports", "esports", "politics"):
            await cog.service.add_class(GUILD, name, "game")

        choices = await cog.class_name_autocomplete(FakeInteraction(), "SPO")  # type: ignore[arg-type]

        assert [c.value for c in choices] == ["sports", "esports"]

    @pytest.mark.asyncio
    async def test_offers_at_most_25_and_nothing_in_dms(self, cog: ZeroShotCog) -> None:
        for i in range(30):
            await cog.service.add_class(GUILD, f"game {i:02}", "game")

        choices = await cog.class_name_autocomplete(FakeInteraction(), "")  # type: ignore[arg-type]
        in_dm = await cog.class_name_autocomplete(FakeInteraction(None), "")  # type: ignore[arg-type]

        assert len(choices) == 25
        assert in_dm == []


class TestCooldown:
    def test_one_use_per_period_per_user(self) -> None:
        now = [100.0]
        cooldown = Cooldown(3.0, clock=lambda: now[0])

        first = cooldown.retry_after(1)
        other_user = cooldown.retry_after(2)
        now[0] = 101.0
        too_soon = cooldown.retry_after(1)
        now[0] = 103.0
        later = cooldown.retry_after(1)

        assert (first, other_user, too_soon, later) == (0.0, 0.0, 2.0, 0.0)

    def test_zero_seconds_turns_it_off(self) -> None:
        cooldown = Cooldown(0.0, clock=lambda: 5.0)

        assert [cooldown.retry_after(1) for _ in range(3)] == [0.0, 0.0, 0.0]


class TestFirstPart:
    def test_a_text_within_the_limit_is_kept_whole(self) -> None:
        assert first_part("what a goal", 11) == "what a goal"

    def test_a_cut_word_is_dropped(self) -> None:
        assert first_part("what a goal in the match", 14) == "what a goal in"
        assert first_part("what a goal in the match", 13) == "what a goal"

    def test_a_cut_on_a_space_keeps_every_word(self) -> None:
        assert first_part("what a goal in the match", 11) == "what a goal"

    def test_one_long_word_is_cut_where_the_limit_is(self) -> None:
        assert first_part("goooooooal and more", 5) == "goooo"


class TestAnswerInTime:
    @pytest.mark.asyncio
    async def test_a_fast_answer_is_not_deferred(self) -> None:
        interaction = FakeInteraction()

        answer = await answer_in_time(interaction, asyncio.sleep(0, "done"), ephemeral=True)  # type: ignore[arg-type]

        assert answer == "done"
        assert interaction.response.sent == []

    @pytest.mark.asyncio
    async def test_a_slow_answer_is_deferred_as_private_as_the_reply(self) -> None:
        interaction = FakeInteraction()
        slow = asyncio.sleep(zeroshot.ANSWER_BUDGET_SECONDS + 0.2, "done")

        answer = await answer_in_time(interaction, slow, ephemeral=True)  # type: ignore[arg-type]

        assert answer == "done"
        assert interaction.response.sent == [
            {"deferred": True, "ephemeral": True, "thinking": True}
        ]


class TestLiveResults:
    @pytest.mark.asyncio
    async def test_a_result_is_remembered_until_it_expires_and_the_oldest_go_first(
        self, cog: ZeroShotCog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await cog.service.add_class(GUILD, "sports", "football goal")
        await cog.service.add_class(GUILD, "music", "song album")
        result = await cog.service.classify(GUILD, "a football goal")
        monkeypatch.setattr(zeroshot, "LIVE_RESULTS", 3)

        views = [await cog._feedback_view(GUILD, f"text {i}", result) for i in range(4)]
        ids = [view.children[0].result_id for view in views if view is not None]  # type: ignore[attr-defined]

        assert len(ids) == 4
        assert cog.live_result(ids[0]) is None  # forgotten: the map holds three
        live = cog.live_result(ids[3])
        assert live is not None
        assert (live.guild_id, live.text, live.predicted) == (GUILD, "text 3", "sports")
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + cog.settings.feedback_minutes * 60 + 2)
        assert cog.live_result(ids[3]) is None
        assert cog.live_results == {}
