"""The shared word-vector model: find it, convert it once, memory-map it read-only.

This package is the only part of zsl that imports gensim. Everything else sees
:class:`WordVectors`, a small read-only view (a matrix, a vocabulary, optional counts, optional
subword vectors). Its parts:

- ``format``: our memory-mapped single-file format, shared by every process on a machine;
- ``sources``: format sniffing and gensim's readers for every other format;
- ``pieces``: vectors for unknown words from a distilled table's WordPiece pieces;
- ``cache``: GloVe and gensim-data downloads, converted once under a file lock;
- ``training``: word2vec on your own text.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

from zsl.errors import ModelError
from zsl.vectors.cache import cached_download, cached_glove, default_cache_dir, safe_stem
from zsl.vectors.format import (
    MAPPED_SUFFIX,
    MappedVocabulary,
    WordVectors,
    open_mapped,
    save_mapped,
)
from zsl.vectors.sources import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_FILE,
    DEFAULT_MODEL_SHA256,
    GLOVE_MODEL,
    ProgressFactory,
    convert,
    open_file,
)
from zsl.vectors.training import MAX_DIM, TRAINING_RANGES, train_word2vec

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_SHA256",
    "GLOVE_MODEL",
    "MAPPED_SUFFIX",
    "MAX_DIM",
    "TRAINING_RANGES",
    "MappedVocabulary",
    "ProgressFactory",
    "WordVectors",
    "convert",
    "default_cache_dir",
    "load_vectors",
    "save_mapped",
    "train_word2vec",
]


def load_vectors(
    spec: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> WordVectors:
    """Load the shared model once per process (the default: the shipped ``minilm-256d``).

    ``spec`` may be the default's name, ``glove-6b-50d`` (the ``glove`` extra), a file (our
    ``.zslv``, a gensim native ``.kv``, a word2vec ``.bin`` or ``.txt``, a GloVe ``.txt`` without
    header, a fastText ``.bin``), or a gensim-data name such as ``word2vec-google-news-300``.
    Named models are converted once into ``cache_dir`` (default: :func:`default_cache_dir`).

    Raises:
        ModelError: the model is missing, in an unknown format, corrupt, or not downloadable.
    """
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return _load_cached(os.fspath(spec) or DEFAULT_MODEL, str(folder))


@functools.lru_cache(maxsize=4)
def _load_cached(spec: str, cache_dir: str) -> WordVectors:
    folder = Path(cache_dir)
    if spec == DEFAULT_MODEL:
        # Part of the package: memory-mapped where it lies, shared by every process.
        source, model = DEFAULT_MODEL_FILE, open_mapped(DEFAULT_MODEL_FILE, name=spec)
    elif spec == GLOVE_MODEL:
        source = cached_glove(folder)
        model = open_mapped(source, name=spec)
    elif (source := Path(spec).expanduser()).exists():
        if source.is_dir():
            raise ModelError(f"The model path {spec} is a folder; point ZSL_MODEL at a file.")
        model = open_file(source)
    elif os.sep in spec or "." in Path(spec).name:
        raise ModelError(
            f"The model file {spec} does not exist. Check ZSL_MODEL, or leave it unset to use "
            f"the built-in {DEFAULT_MODEL}."
        )
    else:
        source = cached_download(spec, folder)
        model = open_mapped(source, name=spec)
    stat = source.stat()
    tables = folder / "tables" / f"{safe_stem(source.name)}-{stat.st_size}-{stat.st_mtime_ns}"
    return dataclasses.replace(model, tables_dir=tables)
