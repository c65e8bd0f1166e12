"""The zero-shot commands: /classify, "Classify message", and the admin commands.

The cog only validates, calls :class:`zsl.ZeroShotService` and renders. It gets the service and
the settings through its constructor and never reads the environment or loads a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

import zsl
from bot import commands as table
from bot import messages, render
from bot.cogs.auto import AutoCog, TagButton, lacking
from bot.settings import Settings, ShardGuilds
from bot.watching import Watcher

log = logging.getLogger(__name__)

Interaction = discord.Interaction[discord.Client]
T = TypeVar("T")

NO_MENTIONS = discord.AllowedMentions.none()
AUTOCOMPLETE_CHOICES = 25  # Discord's maximum
AUTOCOMPLETE_SECONDS = 2.0
"""How long suggestions may wait for a guild's first read: Discord drops them after 3 s."""
CHOICE_LENGTH = 100  # Discord's maximum for a choice's name and value
LIVE_RESULTS = 5000
"""Results whose feedback controls the process remembers (the oldest are forgotten first)."""
ANSWER_BUDGET_SECONDS = 1.0
"""How long a command may work before it acknowledges with a defer. Discord refuses a first
answer 3 s after the member acted, and the gateway's delivery and the reply's own trip eat
into that."""


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

    def __init__(
        self,
        service: zsl.ZeroShotService,
        settings: Settings,
        served: ShardGuilds | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.served = served
        self.watcher = watcher
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
        self.context_menu.error(self.on_command_error)
        self.slash_commands = {spec.name: self._app_command(spec) for spec in table.COMMANDS}

    # -- checks and errors ---------------------------------------------------------------------

    async def on_command_error(
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
        elif isinstance(cause, table.RefusalError):
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
        """The one check that a command runs in a server."""
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if self.served is not None:
            self.served.delivered(interaction.guild_id)
        return interaction.guild_id

    def _check_cooldown(self, interaction: Interaction) -> None:
        retry_after = self.cooldown.retry_after(interaction.user.id)
        if retry_after > 0:
            raise app_commands.CommandOnCooldown(
                app_commands.Cooldown(1, self.cooldown.seconds), retry_after
            )

    # -- the commands of bot.commands ---------------------------------------------------------

    def _app_command(self, spec: table.Command) -> app_commands.Command[Any, ..., None]:
        """The slash command for one entry of the table: options, checks and the callback."""

        async def callback(interaction: Interaction, /, **values: Any) -> None:
            await self.run(spec, interaction, values)

        # discord.py reads the options from the callback's signature, as if it were written out.
        interaction_param = inspect.Parameter(
            "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
        )
        callback.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [interaction_param, *(_parameter(option) for option in spec.options)]
        )
        app_commands.guild_only()(callback)
        if spec.admin:
            app_commands.default_permissions(manage_guild=True)(callback)
            app_commands.checks.has_permissions(manage_guild=True)(callback)
        app_commands.describe(**{o.name: o.description for o in spec.options})(callback)
        choices = {
            o.name: [app_commands.Choice(name=c, value=c) for c in o.choices]
            for o in spec.options
            if o.choices
        }
        if choices:
            app_commands.choices(**choices)(callback)
        completed = {o.name: self.class_name_autocomplete for o in spec.options if o.class_name}
        if completed:
            app_commands.autocomplete(**completed)(callback)
        command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name=spec.name, description=spec.description, callback=callback
        )
        command.error(self.on_command_error)
        return command

    async def run(
        self,
        spec: table.Command,
        interaction: Interaction,
        values: Mapping[str, Any],
    ) -> None:
        """Run one command of the table and show its answer."""
        guild_id = self._guild_id(interaction)
        if spec.cooldown:
            self._check_cooldown(interaction)
        ephemeral = not spec.public or bool(values.get("private"))
        front = _DiscordFront(interaction, ephemeral, self.settings.message_content_intent)
        admin = interaction.permissions.manage_guild
        values = {name: _value(value) for name, value in values.items()}
        call = table.Call(self.service, guild_id, values, admin, front, self.settings, self.watcher)
        answer = await spec.run(call)
        await self.show(interaction, answer, ephemeral=ephemeral)

    async def show(
        self, interaction: Interaction, answer: table.Answer, *, ephemeral: bool
    ) -> None:
        """Reply with ``answer`` as Discord shows it."""
        match answer:
            case table.Said(text):
                await reply(interaction, text, ephemeral=ephemeral)
            case table.Autotagged(text, forum_id, untaught):
                view = None
                if untaught:
                    view = discord.ui.View(timeout=None)  # the custom id carries the forum
                    view.add_item(TagClassesButton(forum_id))
                await reply(interaction, text, view=view, ephemeral=ephemeral)
            case table.Classified(result, text, note):
                await reply(
                    interaction,
                    embed=render.result_embed(result, text, note=note),
                    view=await self._feedback_view(self._guild_id(interaction), text, result),
                    ephemeral=ephemeral,
                )
            case table.ClassList(definitions, page):
                pages = render.class_pages(definitions)
                if page > len(pages):
                    raise table.RefusalError(messages.page_out_of_range(page, len(pages)))
                embed = render.classes_embed(pages[page - 1], len(definitions))
                await reply(interaction, embed=embed, ephemeral=ephemeral)
            case table.Examples(definition):
                await reply(
                    interaction, embed=render.examples_embed(definition), ephemeral=ephemeral
                )
            case table.Votes(votes):
                await reply(interaction, embed=render.votes_embed(votes), ephemeral=ephemeral)
            case table.Help(admin):
                await reply(interaction, embed=render.help_embed(admin), ephemeral=ephemeral)
            case table.File(filename, content, caption):
                document = discord.File(io.BytesIO(content.encode()), filename=filename)
                await reply(interaction, caption, file=document, ephemeral=ephemeral)

    async def classify_message(self, interaction: Interaction, message: discord.Message) -> None:
        guild_id = self._guild_id(interaction)
        self._check_cooldown(interaction)
        if not message.content.strip():
            raise table.RefusalError(messages.NO_MESSAGE_TEXT)
        # A member cannot shorten someone else's message: classify what fits and say so.
        text = first_part(message.content, self.service.limits.text_length)
        note = None if text == message.content else messages.only_first(len(text))
        result = await answer_in_time(
            interaction,
            self.service.classify(guild_id, text, top_k=3),
            ephemeral=False,
        )
        await self.show(interaction, table.Classified(result, text, note), ephemeral=False)

    # -- feedback: "Right" / "Wrong, it is ..." under a result -----------------------------------

    async def _feedback_view(
        self, guild_id: int, text: str, result: zsl.Classification
    ) -> discord.ui.View | None:
        """ "Right" and "Wrong, it is ..." under a result, usable for FEEDBACK_MINUTES, even
        across a restart of the bot (then they answer that they expired)."""
        # In memory: the guild was just used (re-read only if evicted since, which is rare).
        names = [d.name for d in await self.service.classes(guild_id)]
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
                raise table.RefusalError(messages.vote_cooldown(retry_after))
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

    async def class_name_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The guild's class names that contain what was typed, those starting with it first."""
        if interaction.guild_id is None:
            return []
        guild_id = self._guild_id(interaction)
        typed = current.casefold().strip()
        # Discord waits 3 s for suggestions: a guild not in memory gets none rather than a
        # late answer, and is in memory for the next keystroke.
        reading = asyncio.ensure_future(self.service.classes(guild_id))
        reading.add_done_callback(lambda task: task.cancelled() or task.exception())
        done, _ = await asyncio.wait({reading}, timeout=AUTOCOMPLETE_SECONDS)
        if not done or reading.exception() is not None:
            return []
        names = [
            d.name
            for d in reading.result()
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


class TagClassesButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"zsl:tagclasses:(?P<forum>[0-9]{1,20})",
):
    """Under /autotag's answer: create a class for each tag of the forum that has none."""

    def __init__(self, forum_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=messages.CREATE_TAG_CLASSES,
                style=discord.ButtonStyle.primary,
                custom_id=f"zsl:tagclasses:{forum_id}",
            )
        )
        self.forum_id = forum_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> TagClassesButton:
        return cls(int(match["forum"]))

    async def callback(self, interaction: Interaction) -> None:
        cog = _feedback_cog(interaction)
        try:
            guild_id = cog._guild_id(interaction)
            if not interaction.permissions.manage_guild:
                raise app_commands.MissingPermissions(["manage_guild"])
            front = _DiscordFront(interaction, True, cog.settings.message_content_intent)
            call = table.Call(cog.service, guild_id, {}, True, front, cog.settings, cog.watcher)
            answer = await table.create_tag_classes(call, self.forum_id)
            await cog.show(interaction, answer, ephemeral=True)
        except Exception as exc:  # discord.py would only log it; the admin deserves an answer
            await cog.handle_error(interaction, exc)


class _DiscordFront:
    """What a command of the table may ask of one interaction."""

    def __init__(self, interaction: Interaction, ephemeral: bool, reads: bool = False) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.reads = reads

    @property
    def channel_id(self) -> int:
        return self.interaction.channel_id or 0

    @property
    def reads_messages(self) -> bool:
        return self.reads

    def lacks(self, channel_id: int, permissions: tuple[str, ...]) -> tuple[str, ...]:
        return lacking(self.interaction.guild, channel_id, permissions)

    def channel(self, channel_id: int) -> str:
        return f"<#{channel_id}>"  # shown as the channel's name, and never a ping

    def forum_tags(self, forum_id: int) -> tuple[str, ...]:
        guild = self.interaction.guild
        forum = guild.get_channel(forum_id) if guild is not None else None
        if not isinstance(forum, discord.ForumChannel):
            return ()
        return tuple(tag.name for tag in forum.available_tags)

    def show(self, text: str, limit: int) -> str:
        return render.shown(text, limit)

    async def defer(self) -> None:
        if not self.interaction.response.is_done():  # in_time may have deferred already
            await self.interaction.response.defer(ephemeral=self.ephemeral, thinking=True)

    async def in_time(self, work: Coroutine[Any, Any, T]) -> T:
        return await answer_in_time(self.interaction, work, ephemeral=self.ephemeral)


def _parameter(option: table.Option) -> inspect.Parameter:
    """An option as the callback parameter discord.py would read from a written-out command."""
    annotation: Any = option.kind
    if option.kind is table.Upload:
        annotation = discord.Attachment
    elif option.kind is table.Channel:
        annotation = discord.TextChannel
    elif option.kind is table.Forum:
        annotation = discord.ForumChannel
    elif option.kind is not bool and (option.low is not None or option.high is not None):
        annotation = app_commands.Range[option.kind, option.low, option.high]
    default = inspect.Parameter.empty if option.required else option.default
    return inspect.Parameter(
        option.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def _value(value: Any) -> table.Value | None:
    """An option's value as the table takes it: an attachment becomes an Upload."""
    if isinstance(value, discord.Attachment):
        return table.Upload(value.filename, value.size, value.read)
    if isinstance(value, discord.ForumChannel):
        return table.Forum(value.id)
    if isinstance(value, discord.abc.GuildChannel):
        return table.Channel(value.id)
    return value  # type: ignore[no-any-return]  # discord.py checked it against the option


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
    file: discord.File | None = None,
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
    if file is not None:
        kwargs["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)


async def setup(
    bot: commands.Bot | commands.AutoShardedBot,
    service: zsl.ZeroShotService,
    settings: Settings,
    served: ShardGuilds | None = None,
) -> ZeroShotCog:
    """Wire the cog and its context menu into ``bot``; ``served``: the guilds of this
    process's shards (None: all)."""
    watcher = Watcher(service, settings.auto_actions_per_minute)
    await watcher.load()
    cog = ZeroShotCog(service, settings, served, watcher)
    await bot.add_cog(cog)
    if settings.message_content_intent:  # without it, no message reaches the bot
        await bot.add_cog(AutoCog(watcher))
        bot.add_dynamic_items(TagButton, TagClassesButton)
    for command in cog.slash_commands.values():
        bot.tree.add_command(command)
    bot.tree.add_command(cog.context_menu)
    # Feedback controls answer from their custom ids, also under messages sent before a restart.
    bot.add_dynamic_items(RightButton, WrongSelect)
    return cog
