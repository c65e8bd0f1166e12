"""``python -m bot`` refuses to start with one plain sentence when a setting is wrong."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import messages
from tests.reliability.outages import fill_registry, garbled_copy

ROOT = Path(__file__).resolve().parents[2]


def run_bot(workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        capture_output=True,
        text=True,
        cwd=workdir,  # an empty folder: no .env
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        timeout=60,
        check=False,
    )


def test_missing_token_stops_with_where_to_get_one(tmp_path: Path) -> None:
    result = run_bot(tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == messages.TOKEN_MISSING
    assert result.stdout == ""


def test_bad_setting_stops_with_one_sentence_naming_the_key(tmp_path: Path) -> None:
    result = run_bot(tmp_path, DISCORD_TOKEN="x", ZSL_MAX_CLASSES="many")

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ZSL_MAX_CLASSES must be a whole number from 1 to 10,000, not 'many'."
    )


def test_token_in_env_file_is_used(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=from-file\nSHARD_IDS=3\n")

    result = run_bot(tmp_path)

    # The token was found (no TOKEN_MISSING); the next setting in the file is checked.
    assert result.returncode == 2
    assert result.stderr.strip() == "SHARD_IDS needs SHARD_COUNT too (the total number of shards)."


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://zsl:S3cretPW@h/zsl",
        "mysql://zsl:S3cretPW@h/zsl",
        "postgresql://zsl:S3cretPW@127.0.0.1:1/zsl",
    ],
)
def test_database_password_is_never_printed(tmp_path: Path, url: str) -> None:
    result = run_bot(tmp_path, DISCORD_TOKEN="x", ZSL_DATABASE_URL=url, LOG_LEVEL="DEBUG")

    assert result.returncode == 2
    assert "S3cretPW" not in result.stderr + result.stdout
    assert url.replace("S3cretPW", "***") in result.stderr.splitlines()[-1]


def test_a_database_with_garbled_pages_stops_startup_with_one_sentence(tmp_path: Path) -> None:
    asyncio.run(fill_registry(f"sqlite:///{tmp_path}/good.sqlite3"))
    (tmp_path / "data").mkdir()
    garbled_copy(tmp_path / "good.sqlite3", tmp_path / "data" / "zsl.sqlite3")  # the default URL

    result = run_bot(tmp_path, DISCORD_TOKEN="x")

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "not a usable class database" in last
    assert "from a backup" in last


def test_a_port_out_of_range_stops_startup_with_one_sentence(tmp_path: Path) -> None:
    url = "postgresql://zsl:S3cretPW@127.0.0.1:99999/zsl"

    result = run_bot(tmp_path, DISCORD_TOKEN="x", ZSL_DATABASE_URL=url)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Cannot connect to PostgreSQL at postgresql://zsl:***@127.0.0.1:99999/zsl (OverflowError:"
        " connect(): port must be 0-65535). Check ZSL_DATABASE_URL and that the server is running."
    )


def test_the_model_cache_folder_comes_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    cache = tmp_path / "a-file" / "cache"
    # GloVe is converted into the cache on first use (the default ships ready to map).
    (tmp_path / ".env").write_text(
        f"DISCORD_TOKEN=x\nZSL_MODEL=glove-6b-50d\nZSL_CACHE_DIR={cache}\n"
    )

    result = run_bot(tmp_path)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"The model cache folder {cache} is not writable (Not a directory). Set ZSL_CACHE_DIR to"
        " a writable folder."
    )
