"""The zero-shot commands: /classify, "Classify message", and the admin commands.

The cog only validates, calls :class:`zsl.ZeroShotService` and renders. It gets the service and
the settings through its constructor and never reads the environment or loads a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

import zsl
from bot import messages, render
from bot.settings import Settings

log = logging.getLogger(__name__)

Interaction = discord.Interaction[discord.Client]
T = TypeVar("T")

NO_MENTIONS = discord.AllowedMentions.none()
MAX_TEXT = 4000  # Discord's own cap on the option; the configured limit is checked by the core
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_TOP = 10
AUTOCOMPLETE_CHOICES = 25  # Discord's maximum
CHOICE_LENGTH = 100  # Discord's maximum for a choice's name and value
MANAGE_GUILD = discord.Permissions(manage_guild=True)
LIVE_RESULTS = 5000
"""Results whose feedback controls the process remembers (the oldest are forgotten first)."""
ANSWER_BUDGET_SECONDS = 1.0
"""How long a command may work before it acknowledges with a defer. Discord refuses a first
answer 3 s after the member acted, and the gateway's delivery and the reply's own trip eat
into that."""


class RefusalError(app_commands.AppCommandError):
    """An expected refusal whose message (from ``bot.messages``) is shown as it is."""


class Cooldown:
    """One use per ``seconds`` per user; memory stays bounded by forgetting expired entries."""

    def __init__(self, seconds: float, clock: Any = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._until: dict[int, float] = {}

    def retry_after(self, user_id: int) -> float:
        """0 if the user may go ahead now (and starts their cooldown), else seconds to wait."""
        if self.seconds <= 0:
            return 0.0
        now: float = self._clock()
        until = self._until.get(user_id, 0.0)
        if now < until:
            return until - now
        if len(self._until) > 10_000:
            self._until = {user: end for user, end in self._until.items() if end > now}
        self._until[user_id] = now + self.seconds
        return 0.0


class ZeroShotCog(commands.Cog):
    """Per-server zero-shot classification."""

    def __init__(self, service: zsl.ZeroShotService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.cooldown = Cooldown(settings.classify_cooldown_seconds)
        self.vote_cooldown = Cooldown(settings.vote_cooldown_seconds)
        # What a result's feedback controls need, by result id, in memory only: keeping every
        # classified text on disk would keep members' messages there. Insertion order is
        # expiry order, since every result lives FEEDBACK_MINUTES.
        self.live_results: OrderedDict[str, LiveResult] = OrderedDict()
        # Context menus cannot be declared inside a cog class; the client adds this one to
        # the tree next to the cog.
        self.context_menu: app_commands.ContextMenu = app_commands.ContextMenu(
            name=messages.CONTEXT_MENU_NAME,
            callback=self.classify_message,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
        )
        self.context_menu.guild_only = True
        self.context_menu.error(self.on_context_menu_error)

    # -- checks and errors ---------------------------------------------------------------------

    async def interaction_check(self, interaction: Interaction, /) -> bool:
        """Commands work only in servers (guild_only tells Discord; this makes sure)."""
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        return True

    async def cog_app_command_error(
        self, interaction: Interaction, error: app_commands.AppCommandError
    ) -> None:
        await self.handle_error(interaction, error)

    async def on_context_menu_error(
        self, interaction: Interaction, error: app_commands.AppCommandError
    ) -> None:
        await self.handle_error(interaction, error)

    async def handle_error(self, interaction: Interaction, error: BaseException) -> None:
        """Show an expected failure as its sentence; log anything else under an incident id."""
        cause: BaseException = error
        if isinstance(error, app_commands.CommandInvokeError):
            cause = error.original
        if isinstance(cause, zsl.ZslError):
            text = render.escape(messages.error_text(cause))
        elif isinstance(cause, RefusalError):
            text = str(cause)
        elif isinstance(cause, app_commands.NoPrivateMessage):
            text = messages.DM_REFUSED
        elif isinstance(cause, app_commands.MissingPermissions):
            text = messages.MISSING_PERMISSION
        elif isinstance(cause, app_commands.CommandOnCooldown):
            text = messages.cooldown(cause.retry_after)
        else:
            incident = secrets.token_hex(4)
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "incident %s: /%s failed in guild %s",
                incident,
                command,
                interaction.guild_id,
                exc_info=cause,
            )
            text = messages.unexpected_error(incident)
        try:
            await reply(interaction, text, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not deliver an error reply for interaction %s", interaction.id)

    def _guild_id(self, interaction: Interaction) -> int:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        return interaction.guild_id

    def _check_cooldown(self, interaction: Interaction) -> None:
        retry_after = self.cooldown.retry_after(interaction.user.id)
        if retry_after > 0:
            raise app_commands.CommandOnCooldown(
                app_commands.Cooldown(1, self.cooldown.seconds), retry_after
            )

    # -- members -------------------------------------------------------------------------------

    @app_commands.command(name="classify", description=messages.CLASSIFY_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.describe(
        text=messages.CLASSIFY_TEXT, top=messages.CLASSIFY_TOP, private=messages.CLASSIFY_PRIVATE
    )
    async def classify(
        self,
        interaction: Interaction,
        text: app_commands.Range[str, 1, MAX_TEXT],
        top: app_commands.Range[int, 1, MAX_TOP] = 3,
        private: bool = False,
    ) -> None:
        guild_id = self._guild_id(interaction)
        self._check_cooldown(interaction)
        result = await answer_in_time(
            interaction, self.service.classify(guild_id, text, top_k=top), ephemeral=private
        )
        await reply(
            interaction,
            embed=render.result_embed(result, text),
            view=self._feedback_view(guild_id, text, result),
            ephemeral=private,
        )

    async def classify_message(self, interaction: Interaction, message: discord.Message) -> None:
        guild_id = self._guild_id(interaction)
        self._check_cooldown(interaction)
        if not message.content.strip():
            raise RefusalError(messages.NO_MESSAGE_TEXT)
        # A member cannot shorten someone else's message: classify what fits and say so.
        text = first_part(message.content, self.service.limits.text_length)
        note = None if text == message.content else messages.only_first(len(text))
        result = await answer_in_time(
            interaction, self.service.classify(guild_id, text, top_k=3), ephemeral=False
        )
        await reply(
            interaction,
            embed=render.result_embed(result, text, note=note),
            view=self._feedback_view(guild_id, text, result),
            ephemeral=False,
        )

    # -- feedback: "Right" / "Wrong, it is ..." under a result -----------------------------------

    def _feedback_view(
        self, guild_id: int, text: str, result: zsl.Classification
    ) -> discord.ui.View | None:
        """ "Right" and "Wrong, it is ..." under a result, usable for FEEDBACK_MINUTES, even
        across a restart of the bot (then they answer that they expired)."""
        names = [d.name for d in self.service.classes(guild_id)]
        if not names or self.settings.feedback_minutes <= 0:
            return None
        expires = math.ceil(time.time() + self.settings.feedback_minutes * 60)
        result_id = secrets.token_hex(8)
        self._forget_expired()
        self.live_results[result_id] = LiveResult(guild_id, text, result.top.name, expires)
        while len(self.live_results) > LIVE_RESULTS:
            self.live_results.popitem(last=False)
        view = discord.ui.View(timeout=None)  # the custom ids carry the expiry instead
        if not result.abstained:
            view.add_item(RightButton(result_id, expires))
        # The ranked classes first, then the rest; a select holds at most 25 options.
        predicted = result.top.name
        ranked = [p.name for p in result.predictions]
        others = [n for n in ranked if n != predicted or result.abstained]
        others += [n for n in names if n not in ranked]
        if others:
            view.add_item(WrongSelect(result_id, expires, others, abstained=result.abstained))
        return view

    def _forget_expired(self) -> None:
        now = time.time()
        while self.live_results and next(iter(self.live_results.values())).expires < now:
            self.live_results.popitem(last=False)

    def live_result(self, result_id: str) -> LiveResult | None:
        """The result behind a control, or None once it expired or this process forgot it."""
        self._forget_expired()
        return self.live_results.get(result_id)

    async def feedback(self, interaction: Interaction, result_id: str, correct: str | None) -> None:
        """An admin's verdict teaches the class; anyone else's is kept for the admins.

        ``correct`` is the class picked under "Wrong, it is ...", or None for "Right".
        """
        live = self.live_result(result_id)
        if live is not None and live.guild_id != interaction.guild_id:
            raise app_commands.NoPrivateMessage()  # a result of one guild teaches no other
        if live is None:
            # The controls cannot work any more: say so, and take them off the message.
            await interaction.response.edit_message(view=None)
            await interaction.followup.send(
                messages.FEEDBACK_EXPIRED, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        correct = live.predicted if correct is None else correct
        admin = interaction.permissions.manage_guild
        if not admin:
            # One member clicking fast must not flood the guild's votes (they are capped).
            retry_after = self.vote_cooldown.retry_after(interaction.user.id)
            if retry_after > 0:
                raise RefusalError(messages.vote_cooldown(retry_after))
        await interaction.response.defer(ephemeral=True, thinking=True)
        if admin:
            definition = await self.service.add_example(live.guild_id, correct, live.text)
            answer = messages.example_added(
                render.shown(definition.name, 200), len(definition.examples)
            )
        else:
            # The options carry the class names as they are, so equal means "it was right".
            suggested = None if correct == live.predicted else correct
            # The result id makes a member's later vote on this result replace their earlier one.
            await self.service.vote(
                live.guild_id,
                interaction.user.id,
                live.text,
                live.predicted,
                suggested,
                result=result_id,
            )
            answer = messages.VOTE_KEPT
        await reply(interaction, answer, ephemeral=True)

    @app_commands.command(name="classes", description=messages.CLASSES_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.describe(page=messages.CLASSES_PAGE)
    async def list_classes(
        self, interaction: Interaction, page: app_commands.Range[int, 1, 1000] = 1
    ) -> None:
        definitions = self.service.classes(self._guild_id(interaction))
        if not definitions:
            raise RefusalError(messages.NO_CLASSES)
        pages = render.class_pages(definitions)
        if page > len(pages):
            raise RefusalError(messages.page_out_of_range(page, len(pages)))
        embed = render.classes_embed(pages[page - 1], len(definitions))
        await reply(interaction, embed=embed, ephemeral=True)

    @app_commands.command(name="help", description=messages.HELP_DESCRIPTION)
    @app_commands.guild_only()
    async def show_help(self, interaction: Interaction) -> None:
        admin = interaction.permissions.manage_guild
        await reply(interaction, embed=render.help_embed(admin), ephemeral=True)

    # -- admins --------------------------------------------------------------------------------

    @app_commands.command(name="addclass", description=messages.ADD_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(name=messages.ADD_NAME, description=messages.ADD_DESCRIPTION_OPTION)
    async def add_class(
        self,
        interaction: Interaction,
        name: app_commands.Range[str, 1, MAX_NAME],
        description: app_commands.Range[str, 1, MAX_DESCRIPTION],
    ) -> None:
        guild_id = self._guild_id(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        definition = await self.service.add_class(guild_id, name, description)
        count = len(self.service.classes(guild_id))
        await reply(
            interaction,
            messages.class_added(render.shown(definition.name, 200), count),
            ephemeral=True,
        )

    @app_commands.command(name="editclass", description=messages.EDIT_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(
        name=messages.EDIT_NAME,
        new_name=messages.EDIT_NEW_NAME,
        description=messages.EDIT_NEW_DESCRIPTION,
    )
    async def edit_class(
        self,
        interaction: Interaction,
        name: app_commands.Range[str, 1, MAX_NAME],
        new_name: app_commands.Range[str, 1, MAX_NAME] | None = None,
        description: app_commands.Range[str, 1, MAX_DESCRIPTION] | None = None,
    ) -> None:
        guild_id = self._guild_id(interaction)
        if new_name is None and description is None:
            raise RefusalError(messages.EDIT_NOTHING)
        old_name = self.service.get_class(guild_id, name).name
        await interaction.response.defer(ephemeral=True, thinking=True)
        definition = await self.service.edit_class(
            guild_id, name, new_name=new_name, description=description
        )
        text = messages.class_edited(
            render.shown(old_name, 200),
            render.shown(definition.name, 200),
            render.shown(definition.description, 1000),
        )
        await reply(interaction, text, ephemeral=True)

    @app_commands.command(name="removeclass", description=messages.REMOVE_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(name=messages.REMOVE_NAME)
    async def remove_class(
        self, interaction: Interaction, name: app_commands.Range[str, 1, MAX_NAME]
    ) -> None:
        guild_id = self._guild_id(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        removed = await self.service.remove_class(guild_id, name)
        count = len(self.service.classes(guild_id))
        await reply(
            interaction,
            messages.class_removed(render.shown(removed.name, 200), count),
            ephemeral=True,
        )

    @app_commands.command(name="threshold", description=messages.THRESHOLD_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(value=messages.THRESHOLD_VALUE, reset=messages.THRESHOLD_RESET)
    async def threshold(
        self,
        interaction: Interaction,
        value: app_commands.Range[float, 0.0, 1.0] | None = None,
        reset: bool = False,
    ) -> None:
        guild_id = self._guild_id(interaction)
        if value is not None and reset:
            raise RefusalError(messages.THRESHOLD_BOTH)
        if value is None and not reset:
            text = messages.threshold_shown(self.service.threshold(guild_id), zsl.DEFAULT_THRESHOLD)
            await reply(interaction, text, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        current = await self.service.set_threshold(guild_id, None if reset else value)
        await reply(interaction, messages.threshold_set(current), ephemeral=True)

    @app_commands.command(name="addexample", description=messages.ADD_EXAMPLE_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(name=messages.ADD_EXAMPLE_NAME, text=messages.ADD_EXAMPLE_TEXT)
    async def add_example(
        self,
        interaction: Interaction,
        name: app_commands.Range[str, 1, MAX_NAME],
        text: app_commands.Range[str, 1, MAX_TEXT],
    ) -> None:
        guild_id = self._guild_id(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        definition = await self.service.add_example(guild_id, name, text)
        answer = messages.example_added(
            render.shown(definition.name, 200), len(definition.examples)
        )
        await reply(interaction, answer, ephemeral=True)

    @app_commands.command(name="examples", description=messages.EXAMPLES_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(name=messages.EXAMPLES_NAME)
    async def list_examples(
        self, interaction: Interaction, name: app_commands.Range[str, 1, MAX_NAME]
    ) -> None:
        definition = self.service.get_class(self._guild_id(interaction), name)
        await reply(interaction, embed=render.examples_embed(definition), ephemeral=True)

    @app_commands.command(name="removeexample", description=messages.REMOVE_EXAMPLE_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(name=messages.REMOVE_EXAMPLE_NAME, number=messages.REMOVE_EXAMPLE_NUMBER)
    async def remove_example(
        self,
        interaction: Interaction,
        name: app_commands.Range[str, 1, MAX_NAME],
        number: app_commands.Range[int, 1, 10_000],
    ) -> None:
        guild_id = self._guild_id(interaction)
        class_name = self.service.get_class(guild_id, name).name
        await interaction.response.defer(ephemeral=True, thinking=True)
        removed = await self.service.remove_example(guild_id, name, number)
        answer = messages.example_removed(
            render.shown(class_name, 200), render.shown(" ".join(removed.split()), 300)
        )
        await reply(interaction, answer, ephemeral=True)

    @app_commands.command(name="votes", description=messages.VOTES_DESCRIPTION)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(dismiss=messages.VOTES_DISMISS)
    async def list_votes(
        self, interaction: Interaction, dismiss: app_commands.Range[int, 1] | None = None
    ) -> None:
        guild_id = self._guild_id(interaction)
        # Both paths read or write the store, which may be slow or stalled: acknowledge first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        if dismiss is not None:
            await self.service.dismiss_vote(guild_id, dismiss)
            await reply(interaction, messages.vote_dismissed(dismiss), ephemeral=True)
            return
        votes = await self.service.votes(guild_id)
        await reply(interaction, embed=render.votes_embed(votes), ephemeral=True)

    @edit_class.autocomplete("name")
    @remove_class.autocomplete("name")
    @add_example.autocomplete("name")
    @list_examples.autocomplete("name")
    @remove_example.autocomplete("name")
    async def class_name_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The guild's class names that contain what was typed, those starting with it first."""
        if interaction.guild_id is None:
            return []
        typed = current.casefold().strip()
        names = [
            d.name
            for d in self.service.classes(interaction.guild_id)
            if typed in d.name.casefold() and len(d.name) <= CHOICE_LENGTH
        ]
        names.sort(key=lambda n: (not n.casefold().startswith(typed), n.casefold()))
        return [app_commands.Choice(name=n, value=n) for n in names[:AUTOCOMPLETE_CHOICES]]


@dataclass(frozen=True, slots=True)
class LiveResult:
    """What the feedback controls under one result need while they work."""

    guild_id: int
    text: str
    predicted: str
    expires: int
    """Unix seconds."""


def _feedback_cog(interaction: Interaction) -> ZeroShotCog:
    client = interaction.client
    bots = (commands.Bot, commands.AutoShardedBot)
    cog = client.get_cog(ZeroShotCog.__cog_name__) if isinstance(client, bots) else None
    if not isinstance(cog, ZeroShotCog):
        raise RuntimeError("the zero-shot cog is not loaded")
    return cog


async def _run_feedback(interaction: Interaction, result_id: str, correct: str | None) -> None:
    cog = _feedback_cog(interaction)
    try:
        await cog.feedback(interaction, result_id, correct)
    except Exception as exc:  # discord.py would only log it; the member deserves an answer
        await cog.handle_error(interaction, exc)


class RightButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"zsl:right:(?P<result>[0-9a-f]{16}):(?P<expires>[0-9]{1,12})",
):
    """ "Right" under a result; its custom id names the result and when the control expires,
    so a click is answered whatever this process remembers (registered in ``setup``)."""

    def __init__(self, result_id: str, expires: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=messages.FEEDBACK_RIGHT,
                style=discord.ButtonStyle.success,
                custom_id=f"zsl:right:{result_id}:{expires}",
            )
        )
        self.result_id = result_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RightButton:
        return cls(match["result"], int(match["expires"]))

    async def callback(self, interaction: Interaction) -> None:
        await _run_feedback(interaction, self.result_id, None)


class WrongSelect(
    discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]],
    template=r"zsl:wrong:(?P<result>[0-9a-f]{16}):(?P<expires>[0-9]{1,12})",
):
    """ "Wrong, it is ..." under a result: the right class, picked from the guild's classes."""

    def __init__(
        self,
        result_id: str,
        expires: int,
        class_names: list[str] | None = None,
        *,
        abstained: bool = False,
    ) -> None:
        options = [
            discord.SelectOption(label=render.clip(name, CHOICE_LENGTH), value=name[:CHOICE_LENGTH])
            for name in (class_names or [])[:AUTOCOMPLETE_CHOICES]
        ]
        super().__init__(
            discord.ui.Select(
                custom_id=f"zsl:wrong:{result_id}:{expires}",
                placeholder=messages.FEEDBACK_WHICH if abstained else messages.FEEDBACK_WRONG,
                options=options,
            )
        )
        self.result_id = result_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> WrongSelect:
        # The options are not needed to read a click: the chosen value comes with it.
        return cls(match["result"], int(match["expires"]))

    async def callback(self, interaction: Interaction) -> None:
        await _run_feedback(interaction, self.result_id, self.item.values[0])


async def answer_in_time(
    interaction: Interaction, work: Coroutine[Any, Any, T], *, ephemeral: bool
) -> T:
    """The result of ``work``; if it takes longer than the budget, the interaction is deferred
    meanwhile (as ``ephemeral`` as the answer will be), so the answer becomes a follow-up.

    A fast answer stays one direct reply; a slow one (a guild embedded on its first use) is
    still acknowledged within Discord's 3 seconds.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=ANSWER_BUDGET_SECONDS)
    if done:
        return await task
    try:
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
    except BaseException:
        task.cancel()
        raise
    try:
        return await task
    except Exception:
        if not ephemeral:
            # The first follow-up after a defer takes the defer's place, as public as it was:
            # take the "thinking" message away so that the refusal reaches the member alone.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        raise


def first_part(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace():
        # Drop the word that the limit cut in half (unless it is the only one).
        boundary = max((i for i, ch in enumerate(cut) if ch.isspace()), default=0)
        if cut[:boundary].strip():
            cut = cut[:boundary]
    return cut.rstrip()


async def reply(
    interaction: Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool,
) -> None:
    """Answer an interaction, or follow up if it was deferred; never pings anyone."""
    kwargs: dict[str, Any] = {"ephemeral": ephemeral, "allowed_mentions": NO_MENTIONS}
    if content is not None:
        kwargs["content"] = content
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)


async def setup(
    bot: commands.Bot | commands.AutoShardedBot, service: zsl.ZeroShotService, settings: Settings
) -> ZeroShotCog:
    """Wire the cog and its context menu into ``bot``."""
    cog = ZeroShotCog(service, settings)
    await bot.add_cog(cog)
    bot.tree.add_command(cog.context_menu)
    # Feedback controls answer from their custom ids, also under messages sent before a restart.
    bot.add_dynamic_items(RightButton, WrongSelect)
    return cog
