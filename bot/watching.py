"""Watched channels: which channels the bot acts on by itself, and what it does with a message.

Front-independent: the Discord cog (``bot/cogs/auto.py``) and the console both ask a
:class:`Watcher` what to do with a new message and then do it their own way (a reaction or a
log line on Discord, a printed line in the console). Watches live in the registry; this process
keeps those of the guilds it serves in memory, read once at start and changed only through it
(a guild's commands reach the process that serves it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import zsl

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class AutoAction:
    """What a watch does with one message: its class fitted above the guild's threshold."""

    watch: zsl.Watch
    class_name: str
    confidence: float
    emoji: str | None
    """The class's emoji (a "react" watch with none does nothing)."""


class RateLimit:
    """At most ``per_minute`` messages a minute per guild; memory stays bounded by forgetting
    guilds whose window is over."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._windows: dict[int, tuple[float, int]] = {}  # guild: (window start, used)

    def allow(self, guild_id: int) -> bool:
        """Whether the guild may have one more message acted on now (and counts it)."""
        now = self._clock()
        start, used = self._windows.get(guild_id, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, used = now, 0
        if used >= self.per_minute:
            if used == self.per_minute:  # say it once per window, not once per message
                log.info(
                    "guild %d: %d watched messages this minute; skipping the rest", guild_id, used
                )
                self._windows[guild_id] = (start, used + 1)
            return False
        if len(self._windows) > 10_000:
            self._windows = {g: w for g, w in self._windows.items() if now - w[0] < WINDOW_SECONDS}
        self._windows[guild_id] = (start, used + 1)
        return True


class Watcher:
    """The watches of the guilds this process serves, and the decision for one message."""

    def __init__(
        self,
        service: zsl.ZeroShotService,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.limit = RateLimit(per_minute, clock)
        self._by_channel: dict[int, zsl.Watch] = {}

    async def load(self) -> None:
        """Read the watches of the guilds this process serves (at start).

        Raises:
            StoreUnavailableError: the registry did not answer in time.
        """
        self._by_channel = {w.channel_id: w for w in await self.service.watches()}
        log.info("%d watched channels", len(self._by_channel))

    def watches(self, guild_id: int) -> list[zsl.Watch]:
        """The guild's watches, active or disabled."""
        return [w for w in self._by_channel.values() if w.guild_id == guild_id]

    def active(self, channel_id: int) -> zsl.Watch | None:
        """The channel's watch, unless there is none or it was disabled."""
        watch = self._by_channel.get(channel_id)
        return None if watch is None or watch.disabled is not None else watch

    async def watch(self, watch: zsl.Watch) -> None:
        """Watch a channel (or change its watch, which also enables it again).

        Raises:
            StoreError: nothing was changed.
        """
        await self.service.watch(watch)
        self._by_channel[watch.channel_id] = watch

    async def unwatch(self, guild_id: int, channel_id: int) -> bool:
        """Stop watching a channel; False if it was not watched.

        Raises:
            StoreError: nothing was changed.
        """
        watch = self._by_channel.get(channel_id)
        if watch is None or watch.guild_id != guild_id:
            return False
        await self.service.unwatch(guild_id, channel_id)
        del self._by_channel[channel_id]
        return True

    async def disable(self, watch: zsl.Watch, reason: str) -> bool:
        """Stop a watch that cannot act (a permission is missing), keeping it listed with
        ``reason``; True only for the call that disabled it, so it is told once."""
        current = self._by_channel.get(watch.channel_id)
        if current is None or current.disabled is not None:
            return False
        disabled = replace(current, disabled=reason)
        # In memory first: the messages already on their way see it at once.
        self._by_channel[watch.channel_id] = disabled
        try:
            await self.service.watch(disabled)
        except zsl.ZslError as exc:  # it stays off here; after a restart it is tried again
            log.warning("guild %d: could not record the disabled watch: %s", watch.guild_id, exc)
        return True

    async def decide(self, watch: zsl.Watch, text: str) -> AutoAction | None:
        """What ``watch`` does with a new message's ``text``: None when the guild is past its
        rate limit, when no class fits above the threshold, or when the text cannot be
        classified (no classes, no known word). The text is classified, never kept."""
        if not self.service.serves(watch.guild_id) or not text.strip():
            return None
        if not self.limit.allow(watch.guild_id):
            return None
        text = text[: self.service.limits.text_length]
        try:
            result = await self.service.classify(watch.guild_id, text, top_k=1)
            if result.abstained:
                return None
            top = result.predictions[0]
            definition = await self.service.get_class(watch.guild_id, top.name)
        except zsl.ZslError as exc:
            log.debug("guild %d: a watched message was not classified: %s", watch.guild_id, exc)
            return None
        return AutoAction(watch, top.name, top.confidence, definition.emoji)
