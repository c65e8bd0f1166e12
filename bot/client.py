"""The bot: an AutoShardedBot whose setup hook wires the service into the cog and syncs."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import discord
from discord.ext import commands

import zsl
from bot.cogs import zeroshot
from bot.settings import Settings, ShardGuilds

log = logging.getLogger(__name__)

SYNC_META_PREFIX = "command_sync:"


def intents(message_content: bool = False) -> discord.Intents:
    """What slash commands and context menus need, no privileged intent at all; with
    ``message_content`` (MESSAGE_CONTENT_INTENT) also new messages and their text, for watched
    channels."""
    if message_content:
        return discord.Intents(guilds=True, guild_messages=True, message_content=True)
    return discord.Intents(guilds=True)


# The bot never joins voice; without this discord.py warns at every start that voice libraries
# are missing.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False


class ZeroShotBot(commands.AutoShardedBot):
    """The Discord side of the classifier; the model and the store are opened before it."""

    def __init__(
        self,
        service: zsl.ZeroShotService,
        settings: Settings,
        *,
        force_sync: bool = False,
        served: ShardGuilds | None = None,
    ) -> None:
        sharding: dict[str, Any] = {"shard_count": settings.shard_count}
        if settings.shard_ids is not None:
            sharding["shard_ids"] = list(settings.shard_ids)
        super().__init__(
            # Without the message content intent prefix commands cannot work; mentions only.
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(settings.message_content_intent),
            allowed_mentions=discord.AllowedMentions.none(),
            # No message cache: nothing of members' messages is kept, and an edit cannot
            # change, in place, a message that is still waiting to be classified.
            max_messages=None,
            **sharding,
        )
        self.service = service
        self.settings = settings
        self.force_sync = force_sync
        self.served = served

    async def setup_hook(self) -> None:
        await zeroshot.setup(self, self.service, self.settings, self.served)
        guild = self._sync_target()
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        await self.sync_commands(force=self.force_sync)

    def _sync_target(self) -> discord.Object | None:
        if self.settings.dev_guild_id is None:
            return None
        return discord.Object(id=self.settings.dev_guild_id)

    def command_payload(self) -> list[dict[str, object]]:
        """The command definitions as Discord receives them, in a stable order."""
        commands_ = self.tree.get_commands(guild=self._sync_target())
        payload = [command.to_dict(self.tree) for command in commands_]
        return sorted(payload, key=lambda c: (int(str(c.get("type", 1))), str(c["name"])))

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync when the definitions changed since the last sync (or ``force``); True if synced.

        The hash covers the application and the target (one dev guild or global), so a new
        token or a new DEV_GUILD_ID syncs again.
        """
        guild = self._sync_target()
        target = f"guild:{guild.id}" if guild is not None else "global"
        document = json.dumps(
            {"application": self.application_id, "commands": self.command_payload()},
            sort_keys=True,
        )
        digest = hashlib.sha256(document.encode()).hexdigest()
        key = f"{SYNC_META_PREFIX}{target}"
        if not force and await self.service.meta(key) == digest:
            log.info("commands unchanged since the last sync (%s); not syncing", target)
            return False
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as exc:
            # Keep running with the commands of the last successful sync; the hash is not
            # stored, so the next start tries again.
            log.error("command sync (%s) failed: %s", target, exc)
            return False
        await self.service.set_meta(key, digest)
        log.info("synced %d commands (%s)", len(synced), target)
        return True

    async def on_ready(self) -> None:
        # With SHARD_IDS several processes split the shards; say which ones this one runs.
        log.info(
            "ready as %s in %d guilds (shards %s of %s)",
            self.user,
            len(self.guilds),
            ",".join(map(str, sorted(self.shards))) or "-",
            self.shard_count,
        )
