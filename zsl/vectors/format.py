"""Our memory-mapped single-file format: one copy of the model per machine, however many processes.

The matrix, the counts, the words and a hash table over them are all memory-mapped read-only.
N processes on one machine then share one copy of everything, vocabulary included (a Python
dict of 400,000 words would cost each process ~60 MB of its own), and loading one needs neither
gensim (about a second to import) nor unpickling. This module never imports gensim.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import mmap
import os
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
from zsl.vectors.pieces import wordpiece_vector

MAPPED_SUFFIX = ".zslv"
"""Our memory-mapped single-file format (see :func:`save_mapped`)."""
MAPPED_MAGIC = b"ZSLVEC\x00\x01"
_ALIGN = 64


DEFAULT_VECTOR_SHARE = 0.5
"""The averaged vectors' cosine and word matching weigh the same in a class's score: best for
word vectors that were never trained on sentences (GloVe, a table distilled word by word)."""


@dataclass(frozen=True, eq=False)
class WordVectors:
    """A read-only word-vector model: row ``i`` of ``vectors`` belongs to ``words[i]``.

    Rows are ordered most frequent first when the source is (GloVe, word2vec, fastText are).
    ``counts`` holds real corpus counts when the model has them, else ``None`` (then
    frequency is estimated from the rank). A quantised model keeps ``vectors`` as int8 with one
    ``scales`` factor per row; :meth:`rows` gives float32 rows either way.
    """

    name: str
    vectors: npt.NDArray[Any]
    key_to_index: Mapping[str, int]
    counts: npt.NDArray[np.float64] | None = None
    subword_vector: Callable[[str], npt.NDArray[np.float32]] | None = field(
        default=None, repr=False
    )
    scales: npt.NDArray[np.float32] | None = field(default=None, repr=False)
    vector_share: float = DEFAULT_VECTOR_SHARE
    """How much of a class's score the averaged vectors' cosine carries (word matching has the
    rest): a table refined on sentences (``zsl distill --corpus``) is trained for exactly that
    cosine and says so in its file."""
    tables_dir: Path | None = field(default=None, repr=False)
    """Where tables computed from this model (the encoder's) are kept for the next process to
    map instead of computing them again; None: each process computes its own. Named after the
    model file's size and modification time, so a changed file gets new tables."""

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def rows(self, index: npt.NDArray[np.intp] | slice) -> npt.NDArray[np.float32]:
        """The float32 vectors of the rows ``index`` (a copy)."""
        matrix = np.asarray(self.vectors[index], dtype=np.float32)
        if self.scales is not None:
            matrix *= self.scales[index][:, None]
        return matrix

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
# and shape, and optionally ``pieces_from``: the first of the rows, all at the end, that hold
# WordPiece continuation pieces (``##zone``; see :mod:`zsl.vectors.pieces`). Sections start on
# 64-byte boundaries: ``vectors`` (float32 rows, or int8 rows with a float32 ``scales`` section,
# one factor per row), optional ``counts`` (float64), ``offsets`` (uint64, count + 1: where each
# word's UTF-8 bytes start in ``words``), ``words`` (the words' UTF-8 bytes, row order) and
# ``table`` (uint32, a power of two in size: open addressing with linear probing on the CRC-32
# of a word's bytes; 0 = empty,
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
    *,
    scales: npt.NDArray[Any] | None = None,
    pieces_from: int | None = None,
    vector_share: float = DEFAULT_VECTOR_SHARE,
) -> None:
    """Write ``words`` (row order, unique) and ``matrix`` in our memory-mappable format.

    ``matrix`` is float32, or int8 with ``scales`` (row ``i`` is ``matrix[i] * scales[i]``).
    ``pieces_from`` marks a table whose rows from there on are WordPiece continuation pieces
    (``##zone``), from which unknown words are built; ``vector_share`` is kept when it is not
    the default (see :attr:`WordVectors.vector_share`). The bytes
    depend only on the arguments, so equal inputs give identical files. Written to a temporary
    file next to ``target``, flushed, then renamed over it: a crash never leaves a half-written
    model under the real name.
    """
    if len(words) != len(matrix) or len(set(words)) != len(words):
        raise ValueError("words must be unique and match the matrix rows")
    encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    offsets = np.zeros(len(encoded) + 1, dtype="<u8")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    if (scales is not None) != (np.asarray(matrix).dtype == np.int8):
        raise ValueError("an int8 matrix needs scales, and only an int8 matrix has them")
    sections: dict[str, npt.NDArray[Any]] = {
        "vectors": np.ascontiguousarray(matrix, dtype="<f4" if scales is None else "i1"),
        "offsets": offsets,
        "words": np.frombuffer(b"".join(encoded), dtype=np.uint8),
        "table": _hash_table(encoded),
    }
    if counts is not None:
        sections["counts"] = np.ascontiguousarray(counts, dtype="<f8")
    if scales is not None:
        sections["scales"] = np.ascontiguousarray(scales, dtype="<f4")
    layout: dict[str, list[Any]] = {}
    position = 0
    for name, array in sections.items():
        layout[name] = [position, array.dtype.str, list(array.shape)]
        position = -(-(position + array.nbytes) // _ALIGN) * _ALIGN
    header: dict[str, Any] = {"count": len(words), "dim": int(matrix.shape[1]), "sections": layout}
    if pieces_from is not None:
        if not all(w.startswith("##") for w in words[pieces_from:]):
            raise ValueError("every row from pieces_from on must be a ## piece")
        header["pieces_from"] = pieces_from
    if not 0 < vector_share < 1:
        raise ValueError("vector_share must be between 0 and 1, both excluded")
    if vector_share != DEFAULT_VECTOR_SHARE:
        header["vector_share"] = vector_share
    text = json.dumps(header).encode()
    start = _data_start(len(text))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a model is for every local user
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAPPED_MAGIC + struct.pack("<Q", len(text)) + text)
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
    fsync_dir(target.parent)


def _data_start(header_length: int) -> int:
    """Where the sections begin: after the magic, the length and the header, aligned."""
    return -(-(len(MAPPED_MAGIC) + 8 + header_length) // _ALIGN) * _ALIGN


def _corrupt(path: Path, why: str) -> ModelError:
    return ModelError(
        f"The model file {path} is corrupt and could not be loaded ({why}). Convert it again "
        "with 'zsl convert', or delete it to rebuild the default."
    )


def open_mapped(path: Path, name: str) -> WordVectors:
    """Memory-map a file written by :func:`save_mapped`; nothing is copied, gensim is not used.

    Raises:
        ModelError: the file is missing, truncated or not in this format.
    """
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(len(MAPPED_MAGIC) + 8)
            if len(head) < len(MAPPED_MAGIC) + 8 or not head.startswith(MAPPED_MAGIC):
                raise _corrupt(path, "not a zsl vector file")
            (length,) = struct.unpack("<Q", head[len(MAPPED_MAGIC) :])
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
        v_at, v_dtype, v_shape = layout["vectors"]
        o_at, _, _ = layout["offsets"]
        w_at, _, _ = layout["words"]
        t_at, _, (t_size,) = layout["table"]
        quantised = v_dtype == np.int8
        if (
            v_shape != (count, dim)
            or t_size & (t_size - 1)
            or v_dtype not in (np.dtype("<f4"), np.int8)
            or quantised != ("scales" in layout)
            or not 0 <= int(header.get("pieces_from", 0)) <= count
            or not 0 < (vector_share := float(header.get("vector_share", DEFAULT_VECTOR_SHARE))) < 1
        ):
            raise ValueError("inconsistent header")
    except (KeyError, TypeError, ValueError) as exc:
        buffer.close()
        raise _corrupt(path, str(exc) if isinstance(exc, ValueError) else "bad header") from exc
    vectors = np.memmap(path, dtype=v_dtype, mode="r", offset=v_at, shape=(count, dim))
    scales = None
    if quantised:
        s_at = layout["scales"][0]
        scales = np.asarray(np.memmap(path, dtype="<f4", mode="r", offset=s_at, shape=(count,)))
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
    model = WordVectors(
        name=name,
        vectors=vectors,
        key_to_index=vocabulary,
        counts=counts,
        scales=scales,
        vector_share=vector_share,
    )
    if "pieces_from" not in header:
        return model
    # The few thousand continuation pieces go into a private dict: splitting a word probes
    # them once per character, too often for the shared hash table.
    first = int(header["pieces_from"])
    ends = np.frombuffer(view[o_at + 8 * first : o_at + 8 * (count + 1)], "<u8").tolist()
    continuations = {
        buffer[w_at + start + 2 : w_at + end].decode("utf-8", "surrogatepass"): first + i
        for i, (start, end) in enumerate(itertools.pairwise(ends))
    }
    build = functools.partial(wordpiece_vector, model.rows, vocabulary, continuations)
    # A community's new words come back again and again: remember the last few thousand
    # (read-only arrays, about 1 KB each).
    return dataclasses.replace(model, subword_vector=functools.lru_cache(maxsize=4096)(build))


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
