"""docker-compose.yml: its promises as text, and (under .ci/compose) the deployment for real.

The real run needs a Docker engine and the images that ``.ci/compose`` builds first; that script
sets ZSL_COMPOSE_CHECK=1, and without it the real test is skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.conftest import add_class
from tests.e2e.fakediscord import FakeDiscord
from tests.e2e.test_shards import SHARD_0_GUILD, classify, within_a_second

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "docker-compose.yml").read_text()
PROJECT = "zslcheck"
SHARDS = ("bot-shard-0", "bot-shard-1")


def test_two_bot_processes_split_two_shards_over_one_postgres_registry() -> None:
    block = COMPOSE.split("\nservices:\n")[1].split("\nvolumes:\n")[0]
    services = re.findall(r"^  ([a-z0-9-]+):$", block, flags=re.MULTILINE)
    shard_ids = re.findall(r'SHARD_IDS: "(\d+)"', COMPOSE)

    assert services == ["postgres", *SHARDS]
    assert sorted(shard_ids) == ["0", "1"]
    assert 'SHARD_COUNT: "2"' in COMPOSE
    assert re.search(r"ZSL_DATABASE_URL: postgresql://\S+@postgres:5432/", COMPOSE)
    assert "condition: service_healthy" in COMPOSE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _instant(stamp: str) -> datetime:
    """Docker's RFC 3339 time with nanoseconds, to the microsecond."""
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp)


class Compose:
    """docker-compose.yml with .ci/compose.host.yml over it, in a folder holding its .env."""

    def __init__(self, workdir: Path, pg_port: int) -> None:
        self.command = [
            "docker-compose",
            "--project-name",
            PROJECT,
            "--project-directory",
            str(workdir),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(ROOT / ".ci" / "compose.host.yml"),
        ]
        self.env = {**os.environ, "ZSL_CHECK_PG_PORT": str(pg_port)}

    async def run(self, *args: str) -> str:
        # Not subprocess.run: the fake Discord answers the shards on this event loop meanwhile.
        process = await asyncio.create_subprocess_exec(
            *self.command,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        assert process.returncode == 0, f"docker-compose {' '.join(args)}:\n{text}"
        return text

    async def startup_seconds(self, service: str) -> float:
        """From the container's start to its shard's "ready as" log line.

        discord.py logs ready a little after the gateway handshake (it waits for the guilds
        first), so the line may come after the shard has already answered.
        """
        container = f"{PROJECT}_{service}_1"
        started = await _docker("inspect", "--format", "{{.State.StartedAt}}", container)
        deadline = time.monotonic() + 30
        while True:
            logs = await _docker("logs", "--timestamps", container)
            ready = [line for line in logs.splitlines() if " ready as " in line]
            if ready or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert ready, f"{service} never logged that it is ready:\n{logs}"
        return (_instant(ready[0].split(" ", 1)[0]) - _instant(started)).total_seconds()


async def _docker(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


@pytest_asyncio.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[tuple[FakeDiscord, Compose]]:
    fake = FakeDiscord()
    await fake.start()
    # The shards read DISCORD_TOKEN and the fake's addresses from the .env that compose reads.
    settings = {**fake.env(), "LOG_LEVEL": "INFO"}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    compose = Compose(tmp_path, _free_port())
    try:
        began = time.monotonic()
        await compose.run("up", "--detach", "--no-build")
        await fake.wait_shards(2)
        print(f"\ncompose up to both shards connected: {time.monotonic() - began:.1f} s")
        yield fake, compose
    finally:
        workdir = Path(os.environ.get("ZSL_COMPOSE_WORKDIR", tmp_path))
        (workdir / "compose.log").write_text(await compose.run("logs", "--no-color"))
        await compose.run("down", "--volumes", "--timeout", "20")
        await fake.stop()


@pytest.mark.skipif(
    not os.environ.get("ZSL_COMPOSE_CHECK"), reason="needs the engine and images of .ci/compose"
)
@pytest.mark.asyncio
async def test_the_deployment_classifies_with_a_class_added_through_one_shard(
    deployment: tuple[FakeDiscord, Compose],
) -> None:
    fake, compose = deployment

    await add_class(fake, SHARD_0_GUILD, "sports", "football match team goal")
    await add_class(fake, SHARD_0_GUILD, "music", "song album band concert")
    at_home = await classify(fake, SHARD_0_GUILD, "what a goal in the last minute")
    # Through the other container: the class reached it by the shared PostgreSQL.
    moved = await within_a_second(
        fake, SHARD_0_GUILD, "their new album is out", 1, ["sports", "music"]
    )
    startup = {service: await compose.startup_seconds(service) for service in SHARDS}

    for service, seconds in startup.items():
        print(f"{service}: container start to ready {seconds:.1f} s")
    assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]
    assert at_home[0] == "sports"
    assert moved[0] == "music"
    assert all(0 < seconds < 60 for seconds in startup.values())
