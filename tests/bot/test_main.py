"""``python -m bot`` refuses to start with one plain sentence when a setting is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import messages

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
    assert result.stderr.strip() == "ZSL_MAX_CLASSES must be a whole number above 0, not 'many'."


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
