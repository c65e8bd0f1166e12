"""python -m bot: settings, logging, the model and the store, then Discord (or the console).

python -m bot             run the bot (needs DISCORD_TOKEN)
python -m bot --sync      ... and sync the commands even if they did not change
python -m bot --console   the same commands in a terminal, offline, no token
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import aiohttp
import discord
import yarl

import zsl
from bot import messages
from bot.client import ZeroShotBot
from bot.settings import Settings, SettingsError, ShardGuilds

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Run the zero-shot classifier bot on Discord, or its offline console.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--console", action="store_true", help="type the commands in this terminal (offline)"
    )
    mode.add_argument(
        "--sync", action="store_true", help="sync the slash commands even if they did not change"
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )
    # discord.py logs every gateway event at DEBUG; keep our own DEBUG readable.
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.INFO))
    # gensim narrates every load at INFO; what matters (loaded, or one sentence why not) is ours.
    if level != "DEBUG":
        logging.getLogger("gensim").setLevel(logging.WARNING)
    # While PostgreSQL is down asyncpg retries its pool every few seconds, each time with a
    # full traceback; the store already logs every refused call, so one line each is enough.
    logging.getLogger("asyncpg.pool").addFilter(_without_traceback)


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


def point_discord_at(settings: Settings) -> None:
    """Use another Discord (the test fake) when DISCORD_API_BASE / DISCORD_GATEWAY_URL say so."""
    if settings.api_base:
        discord.http.Route.BASE = settings.api_base
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


async def run_bot(settings: Settings, token: str, vectors: zsl.WordVectors, *, sync: bool) -> int:
    """Open the store, connect, and run until SIGINT/SIGTERM or a fatal error."""
    served = ShardGuilds.of(settings)  # a process reads only the guilds of its shards
    service = await zsl.ZeroShotService.open(
        vectors,
        settings.database_url,
        limits=settings.limits,
        store_timeout=settings.store_timeout_seconds,
        owns=served,
        cache_bytes=settings.guild_cache_mb * 2**20,
        calibration_bytes=settings.calibration_cache_mb * 2**20,
    )
    try:
        bot = ZeroShotBot(service, settings, force_sync=sync, served=served)
        loop = asyncio.get_running_loop()
        closing: list[asyncio.Task[None]] = []

        def stop(signame: str) -> None:
            log.info("%s received; closing the gateway, the service and the store", signame)
            if not closing:
                closing.append(loop.create_task(bot.close()))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig.name)
        async with bot:
            try:
                await bot.start(token)
            except discord.LoginFailure:
                print(messages.TOKEN_REJECTED, file=sys.stderr)
                return 2
            except discord.PrivilegedIntentsRequired:
                print(messages.INTENTS_REFUSED, file=sys.stderr)
                return 2
            except (aiohttp.ClientError, OSError) as exc:
                log.debug("cannot reach Discord", exc_info=exc)
                print(messages.discord_unreachable(str(exc)), file=sys.stderr)
                return 1
        if closing:
            await closing[0]
    finally:
        await service.close()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(args.env_file)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.console:
        from bot import console

        # The console's answers go to stdout; only problems (or DEBUG on request) to stderr.
        configure_logging("DEBUG" if settings.log_level == "DEBUG" else "WARNING")

        return console.main(settings)
    configure_logging(settings.log_level)
    try:
        token = settings.require_token()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    point_discord_at(settings)
    zsl.configure_process()
    try:
        vectors = zsl.load_vectors(settings.model, cache_dir=settings.cache_dir)
        return asyncio.run(run_bot(settings, token, vectors, sync=args.sync))
    except zsl.ZslError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C while the model was still loading
        return 130


if __name__ == "__main__":
    sys.exit(main())
