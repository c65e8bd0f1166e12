"""Fixtures for the end-to-end tests: a fake Discord and the real ``python -m bot`` process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest_asyncio

from tests.e2e.fakediscord import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """``python -m bot`` as a child process pointed at the fake; its output goes to a file."""

    started = 0
    stop_seconds = 15.0

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(
        cls,
        fake: FakeDiscord,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> BotProcess:
        # A clean environment: nothing from the developer's shell or .env leaks in, except
        # where the converted model is cached (so the tests do not convert it again).
        child_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(workdir)),
            "PYTHONPATH": str(ROOT),
            "ZSL_DATABASE_URL": f"sqlite:///{workdir / 'zsl.sqlite3'}",
            "LOG_LEVEL": "INFO",
            **fake.env(),
        }
        for key in ("ZSL_CACHE_DIR", "XDG_CACHE_HOME"):
            if key in os.environ:
                child_env[key] = os.environ[key]
        child_env.update(env or {})
        cls.started += 1
        log_path = workdir / f"bot-{cls.started}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                *args,
                cwd=workdir,  # so no .env file of the repository is read
                env=child_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        return cls(process, log_path)

    @classmethod
    async def start_ready(
        cls,
        fake: FakeDiscord,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> BotProcess:
        """Start the bot on a fresh gateway session and wait until it is ready."""
        fake.reset_connection()
        process = await cls.start(fake, workdir, env, args)
        try:
            await fake.wait_ready()
        except TimeoutError:
            await process.stop()
            raise AssertionError(f"the bot never connected:\n{process.log()}") from None
        return process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), self.stop_seconds)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(
                    f"the bot did not stop within {self.stop_seconds} s:\n{self.log()}"
                ) from None
        assert self.process.returncode is not None
        return self.process.returncode


ADMIN = 3100000000000000001


async def add_class(
    fake: FakeDiscord, guild_id: int, name: str, description: str, admin_id: int = ADMIN
) -> None:
    """/addclass as a server admin; fails the test unless the class was added."""
    exchange = await fake.interact(
        "addclass",
        {"name": name, "description": description},
        guild_id=guild_id,
        user_id=admin_id,
        admin=True,
    )
    assert "Added the class" in exchange.text, exchange.text


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.stop()
