"""Watched channels on Discord: each new message there is classified and acted on.

The decision is :class:`bot.watching.Watcher`'s; this cog only reads the message and acts: the
class's emoji as a reaction, or one line in the log channel. A permission the bot lost stops
the watch once, with one note, instead of failing on every message.
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from bot import messages, render
from bot.commands import LOG_NEEDS, REACT_NEEDS
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
