"""Real outages for the tests: a PostgreSQL cluster that can be stopped and started again, a
read-only SQLite file, and a full disk."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import _free_port, find_bin


class Cluster:
    """A throwaway PostgreSQL cluster of its own (the shared test server must stay up)."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            if os.environ.get("ZSL_REQUIRE_POSTGRES"):
                pytest.fail("PostgreSQL is required here: initdb and pg_ctl are not installed")
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self._pg_ctl = pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="zsl-pg-outage-"))
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")
        self.data, self.port = self.folder / "data", _free_port()
        subprocess.run(
            [
                *self._as_user,
                initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, self._pg_ctl, "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._ctl("-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop now: open connections are cut, as when a database server goes down."""
        self._ctl("-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[str]:
    """Make files read-only for real, even for root (which ignores permission bits): the
    immutable attribute. Yields how it was done."""
    existing = [p for p in paths if p.exists()]
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in existing}
        for p in existing:
            p.chmod(0o444)
        try:
            yield "chmod"
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    done = subprocess.run(["chattr", "+i", *map(str, existing)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file read-only as root here (chattr: {done.stderr!r})")
    try:
        yield "chattr +i"
    finally:
        subprocess.run(["chattr", "-i", *map(str, existing)], check=True)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[bool]:
    """A tmpfs of ``size`` mounted at ``folder``; yields False if mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(filler: Path) -> int:
    """Write ``filler`` until the disk is full; return the bytes written."""
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            written += os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return written
