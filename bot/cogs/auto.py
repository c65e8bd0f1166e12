"""Auto-classification on Discord: watched channels' new messages and tagged forums' new posts.

The decisions are :class:`bot.watching.Watcher`'s; this cog only reads the message and acts:
the class's emoji as a reaction, one line in the log channel, or a forum post's tags (added,
or suggested with a button). A permission the bot lost stops a watch once, with one note,
instead of failing on every message.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import discord
from discord.ext import commands

import zsl
from bot import messages, render
from bot.commands import LOG_NEEDS, MAX_FORUM_TAGS, REACT_NEEDS
from bot.watching import AutoAction, Watcher

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
ACTED_ON = (discord.MessageType.default, discord.MessageType.reply)
"""Messages members write; joins, pins, boosts and the like are left alone."""


def lacking(
    guild: discord.Guild | None, channel_id: int, permissions: tuple[str, ...]
) -> tuple[str, ...]:
    """Which of ``permissions`` the bot lacks in a channel of ``guild``; none when the guild or
    the channel is not known here (then an action that fails says it)."""
    channel = guild.get_channel(channel_id) if guild is not None else None
    me = guild.me if guild is not None else None
    if channel is None or me is None:
        return ()
    allowed = channel.permissions_for(me)
    return tuple(name for name in permissions if not getattr(allowed, name))


class AutoCog(commands.Cog):
    """Acts on new messages in watched channels (needs the Message Content intent)."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        # New messages only (edits come as another event), from people: never a bot's, the
        # bot's own or a webhook's. Nothing of the message is kept.
        guild = message.guild
        if guild is None or message.author.bot or message.webhook_id is not None:
            return
        if message.type not in ACTED_ON:
            return
        channel = message.channel
        if isinstance(channel, discord.Thread) and message.id == channel.id:
            # A forum post's first message: the post is tagged from its title and this text.
            autotag = self.watcher.forum(channel.parent_id or 0)
            if autotag is not None and autotag.guild_id == guild.id:
                await self.tag(message, channel, autotag)
            return
        watch = self.watcher.active(message.channel.id)
        if watch is None or watch.guild_id != guild.id:
            return
        action = await self.watcher.decide(watch, message.content)
        if action is not None:
            await self.act(message, guild, action)

    async def act(self, message: discord.Message, guild: discord.Guild, action: AutoAction) -> None:
        watch = action.watch
        if watch.action == "react":
            if action.emoji is None:
                return
            missing = lacking(guild, watch.channel_id, REACT_NEEDS)
            if missing:
                await self.stop(guild, action, missing)
                return
            try:
                await message.add_reaction(action.emoji)
            except discord.Forbidden:
                await self.stop(guild, action, REACT_NEEDS[1:])
            except discord.HTTPException as exc:  # e.g. a server emoji that was deleted
                log.warning("guild %d: could not react with %r: %s", guild.id, action.emoji, exc)
            return
        log_channel = watch.log_channel_id or watch.channel_id
        target = guild.get_channel(log_channel)
        missing = lacking(guild, log_channel, LOG_NEEDS)
        if missing or not isinstance(target, discord.abc.Messageable):
            await self.stop(guild, action, missing or LOG_NEEDS)
            return
        line = messages.watch_log_line(
            render.shown(action.class_name, 100),
            action.confidence,
            f"<#{watch.channel_id}>",
            message.jump_url,
        )
        try:
            await target.send(line, allowed_mentions=NO_MENTIONS)
        except discord.Forbidden:
            await self.stop(guild, action, LOG_NEEDS[1:])
        except discord.HTTPException as exc:
            log.warning("guild %d: could not write a log line: %s", guild.id, exc)

    async def tag(
        self, message: discord.Message, thread: discord.Thread, autotag: zsl.Autotag
    ) -> None:
        """Add (or suggest) the forum tags whose classes fit a new post; the tags a person
        set stay, and a post never gets more than Discord's 5."""
        forum = thread.parent
        if not isinstance(forum, discord.ForumChannel):
            return
        applied = {tag.id for tag in thread.applied_tags}
        offered = [tag for tag in forum.available_tags if tag.id not in applied]
        names = await self.watcher.tags(
            autotag,
            f"{thread.name}\n{message.content}",
            [tag.name for tag in offered],
            MAX_FORUM_TAGS - len(applied),
        )
        chosen = [next(tag for tag in offered if tag.name == name) for name in names]
        if not chosen:
            return
        try:
            if autotag.mode == "apply":
                await thread.add_tags(*chosen, reason="zsl: the classes of the post")
            else:
                view = discord.ui.View(timeout=None)  # the custom id carries the tags
                view.add_item(TagButton([tag.id for tag in chosen]))
                await thread.send(
                    messages.tags_suggested([render.shown(t.name, 100) for t in chosen]),
                    view=view,
                    allowed_mentions=NO_MENTIONS,
                )
        except discord.HTTPException as exc:
            log.warning("guild %d: could not tag post %d: %s", autotag.guild_id, thread.id, exc)

    async def stop(
        self, guild: discord.Guild, action: AutoAction, missing: tuple[str, ...]
    ) -> None:
        """Disable the watch that cannot act: logged once, one note to the log channel (or the
        watched channel when there is none, or the log channel refuses it)."""
        watch = action.watch
        names = ", ".join(messages.PERMISSION_NAMES.get(m, m) for m in missing)
        if not await self.watcher.disable(watch, names):
            return  # another message got here first
        log.warning(
            "guild %d: stopped watching channel %d: the bot lacks %s",
            guild.id,
            watch.channel_id,
            names,
        )
        note = messages.watch_disabled_note(f"<#{watch.channel_id}>", names)
        for channel_id in dict.fromkeys(c for c in (watch.log_channel_id, watch.channel_id) if c):
            channel = guild.get_channel(channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                continue
            try:
                await channel.send(note, allowed_mentions=NO_MENTIONS)
                return
            except discord.HTTPException:
                continue


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


class TagButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"zsl:tags:(?P<tags>[0-9a-z]{1,13}(?:\.[0-9a-z]{1,13}){0,4})",
):
    """ "Apply these tags" under a suggestion; its custom id names the tags (base 36, so five
    fit Discord's 100 characters), so a click works whatever this process remembers."""

    def __init__(self, tag_ids: list[int]) -> None:
        super().__init__(
            discord.ui.Button(
                label=messages.TAGS_BUTTON,
                style=discord.ButtonStyle.primary,
                custom_id="zsl:tags:" + ".".join(_base36(t) for t in tag_ids),
            )
        )
        self.tag_ids = tag_ids

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> TagButton:
        return cls([int(part, 36) for part in match["tags"].split(".")])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        thread = interaction.channel
        if not isinstance(thread, discord.Thread) or not isinstance(
            thread.parent, discord.ForumChannel
        ):
            return
        if interaction.user.id != thread.owner_id and not interaction.permissions.manage_threads:
            await interaction.response.send_message(
                messages.TAGS_NOT_YOURS, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        applied = {tag.id for tag in thread.applied_tags}
        room = MAX_FORUM_TAGS - len(applied)
        chosen = [
            tag
            for tag in thread.parent.available_tags
            if tag.id in self.tag_ids and tag.id not in applied
        ][: max(room, 0)]
        if not chosen:
            await interaction.response.edit_message(content=messages.TAGS_EXPIRED, view=None)
            return
        await thread.add_tags(*chosen, reason=f"zsl: applied by {interaction.user.id}")
        names = [render.shown(tag.name, 100) for tag in chosen]
        await interaction.response.edit_message(content=messages.tags_applied(names), view=None)
