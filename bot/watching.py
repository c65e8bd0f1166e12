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
from collections.abc import Callable, Sequence
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
        self._by_forum: dict[int, zsl.Autotag] = {}

    async def load(self) -> None:
        """Read the watches of the guilds this process serves (at start).

        Raises:
            StoreUnavailableError: the registry did not answer in time.
        """
        self._by_channel = {w.channel_id: w for w in await self.service.watches()}
        self._by_forum = {a.forum_id: a for a in await self.service.autotags()}
        log.info(
            "%d watched channels, %d tagged forums", len(self._by_channel), len(self._by_forum)
        )

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

    # -- forums whose new posts get tags --------------------------------------------------------

    def autotags(self, guild_id: int) -> list[zsl.Autotag]:
        return [a for a in self._by_forum.values() if a.guild_id == guild_id]

    def forum(self, forum_id: int) -> zsl.Autotag | None:
        """How the forum's new posts get tags, or None."""
        return self._by_forum.get(forum_id)

    async def autotag(self, autotag: zsl.Autotag) -> None:
        """Tag a forum's new posts (or change how). Raises StoreError: nothing changed."""
        await self.service.autotag(autotag)
        self._by_forum[autotag.forum_id] = autotag

    async def unautotag(self, guild_id: int, forum_id: int) -> bool:
        """Stop tagging a forum's posts; False if they were not tagged."""
        autotag = self._by_forum.get(forum_id)
        if autotag is None or autotag.guild_id != guild_id:
            return False
        await self.service.unautotag(guild_id, forum_id)
        del self._by_forum[forum_id]
        return True

    async def tags(
        self, autotag: zsl.Autotag, text: str, tags: Sequence[str], room: int
    ) -> list[str]:
        """The forum ``tags`` (names) whose classes fit a new post's ``text`` above the
        guild's threshold, best first, at most ``room`` and the forum's ``max_tags``; none when
        the guild is past its rate limit or the text cannot be classified."""
        room = min(room, autotag.max_tags)
        if room <= 0 or not tags or not self.service.serves(autotag.guild_id):
            return []
        if not text.strip() or not self.limit.allow(autotag.guild_id):
            return []
        by_key = {tag_key(tag): tag for tag in tags}
        try:
            threshold = await self.service.threshold(autotag.guild_id)
            result = await self.service.classify(
                autotag.guild_id, text[: self.service.limits.text_length], top_k=MAX_RANKED
            )
        except zsl.ZslError as exc:
            log.debug("guild %d: a forum post was not classified: %s", autotag.guild_id, exc)
            return []
        fitting = [
            by_key[tag_key(p.name)]
            for p in result.predictions
            if tag_key(p.name) in by_key and p.confidence >= threshold
        ]
        return fitting[:room]


MAX_RANKED = 25  # the most the service ranks
"""Classes ranked for a forum post: the tags are picked among them."""


def tag_key(name: str) -> str:
    """A forum tag and a class match when their names differ only in case and spaces."""
    return "".join(name.casefold().split())
