"""Docker cannot run here: check docker-compose.yml's promises as text."""

from __future__ import annotations

import re
from pathlib import Path

COMPOSE = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()


def test_two_bot_processes_split_two_shards_over_one_postgres_registry() -> None:
    block = COMPOSE.split("\nservices:\n")[1].split("\nvolumes:\n")[0]
    services = re.findall(r"^  ([a-z0-9-]+):$", block, flags=re.MULTILINE)
    shard_ids = re.findall(r'SHARD_IDS: "(\d+)"', COMPOSE)

    assert services == ["postgres", "bot-shard-0", "bot-shard-1"]
    assert sorted(shard_ids) == ["0", "1"]
    assert 'SHARD_COUNT: "2"' in COMPOSE
    assert re.search(r"ZSL_DATABASE_URL: postgresql://\S+@postgres:5432/", COMPOSE)
    assert "condition: service_healthy" in COMPOSE
