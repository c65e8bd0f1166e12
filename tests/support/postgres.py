"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, loopback only."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder, on 127.0.0.1, that can be stopped
    and started again (the outage tests cut a server of their own).

    PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.

    Raises:
        FileNotFoundError: the server binaries are not installed.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self._pg_ctl = pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="zsl-pg-"))
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")
        self.data, self.port = self.folder / "data", _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        try:
            subprocess.run(
                [
                    *self._as_user,
                    initdb,
                    *("-D", str(self.data), "-U", "postgres", "-A", "trust"),
                    *("-E", "UTF8", "--no-sync"),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, self._pg_ctl, "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200"
        )
        self._ctl("-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop now: open connections are cut, as when a database server goes down."""
        self._ctl("-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def temporary_cluster() -> Iterator[str]:
    """Start a cluster and yield its URL; stop and delete it afterwards."""
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.remove()
