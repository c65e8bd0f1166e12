"""Accuracy on a labelled data set, through the public service API, as a user's script would.

A data set is a folder holding ``test.tsv`` (``label<TAB>text`` per line), ``labels.txt`` and,
optionally, ``descriptions.tsv`` (``label<TAB>description``). ``zsl eval`` and the scripts in
``benchmarks/`` use this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zsl.classes import Limits
from zsl.classifier import Classification
from zsl.errors import UnknownWordsError, ZslError
from zsl.naive import NaiveClassifier
from zsl.service import ZeroShotService
from zsl.vectors import ProgressFactory, WordVectors

_GUILD = 1
_IN_FLIGHT = 256


@dataclass(frozen=True)
class DataSet:
    """A labelled data set: its labels, their descriptions, and (gold label, text) rows."""

    labels: list[str]
    descriptions: dict[str, str]
    rows: list[tuple[str, str]]  # (gold label, text)


def read_text(path: Path, what: str, hint: str = "Check the path.") -> str:
    """The UTF-8 text of ``path`` (a byte order mark, as Windows editors write, is fine).

    Raises:
        ZslError: the file cannot be read or is not UTF-8.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ZslError(
            f"Cannot read {what} {path}: it is not UTF-8 text. Save it as UTF-8."
        ) from exc
    except OSError as exc:
        reason = (exc.strerror or "it cannot be opened").lower()
        raise ZslError(f"Cannot read {what} {path} ({reason}). {hint}") from exc


def read_dataset(folder: Path, names_only: bool) -> DataSet:
    """Read ``test.tsv``, ``labels.txt`` and (unless ``names_only``) ``descriptions.tsv``.

    Raises:
        ZslError: a file is missing or malformed.
    """
    hint = "A data set folder needs test.tsv and labels.txt."
    labels = [
        line.strip()
        for line in read_text(folder / "labels.txt", "the label list", hint).splitlines()
        if line.strip()
    ]
    rows = []
    for number, line in enumerate(
        read_text(folder / "test.tsv", "the test set", hint).splitlines(), start=1
    ):
        if not line.strip():
            continue
        gold, tab, text = line.partition("\t")
        if not tab:
            raise ZslError(
                f"{folder / 'test.tsv'} line {number} has no tab: expected label<TAB>text."
            )
        rows.append((gold, text))
    descriptions: dict[str, str] = {}
    described = folder / "descriptions.tsv"
    if not names_only and described.exists():
        for line in read_text(described, "the descriptions", hint).splitlines():
            label, _, description = line.partition("\t")
            if label.strip():
                descriptions[label.strip()] = description.strip()
    if not labels:
        raise ZslError(f"{folder / 'labels.txt'} lists no labels.")
    return DataSet(labels, descriptions, rows)


def macro_f1(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """The mean over ``labels`` of each label's F1 score."""
    scores = []
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if p == label != g)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label != p)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def open_set_auroc(
    gold: Sequence[str],
    best_two: Sequence[Sequence[tuple[str, float]]],
    labels: Sequence[str],
) -> float:
    """How well confidence tells texts of a missing class from the rest, leaving each class out.

    For each class c, as if c had never been added: every text's confidence is that of its best
    class other than c. The AUROC of that confidence, texts of the other classes (which have
    their class) against texts of c (which have none), is the chance that a random text with a
    class is more confident than a random text without. The mean over classes; 0.5 is chance.
    A text with no known word has confidence 0.
    """
    aurocs = []
    for left_out in labels:
        confidence = np.array(
            [next((c for name, c in two if name != left_out), 0.0) for two in best_two]
        )
        missing = np.array([g == left_out for g in gold])
        if missing.all() or not missing.any():
            continue
        aurocs.append(_auroc(confidence[~missing], confidence[missing]))
    return float(np.mean(aurocs)) if aurocs else 0.5


def _auroc(positives: npt.NDArray[np.float64], negatives: npt.NDArray[np.float64]) -> float:
    """P(a random positive scores above a random negative), ties counting half (Mann-Whitney)."""
    values = np.concatenate([positives, negatives])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    # Average ranks over ties: each run of equal values gets the mean of its positions.
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    p = len(positives)
    return float((ranks[:p].sum() - p * (p + 1) / 2.0) / (p * len(negatives)))


def pick_examples(data: DataSet, per_class: int, seed: int) -> dict[int, str]:
    """Rows to teach the classes with, as an admin's corrections would: ``per_class`` texts
    of each label (fewer if it has fewer), drawn at random with ``seed``. Row -> label."""
    rng = random.Random(seed)
    picked: dict[int, str] = {}
    for label in data.labels:
        rows = [i for i, (gold, _) in enumerate(data.rows) if gold == label]
        picked.update((i, label) for i in rng.sample(rows, min(per_class, len(rows))))
    return picked


@contextlib.asynccontextmanager
async def scratch_service(
    vectors: WordVectors, limits: Limits | None = None
) -> AsyncIterator[ZeroShotService]:
    """A service on a throwaway SQLite registry, deleted on exit (default: unlimited sizes)."""
    with tempfile.TemporaryDirectory(prefix="zsl-") as folder:
        service = await ZeroShotService.open(
            vectors,
            f"sqlite:///{folder}/scratch.sqlite3",
            limits=Limits.unlimited() if limits is None else limits,
        )
        async with service:
            yield service


async def evaluate(
    vectors: WordVectors,
    data: DataSet,
    predictions_out: Path | None = None,
    naive: bool = False,
    examples: int = 0,
    seed: int = 0,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1, coverage and speed of the public API on a data set.

    With ``examples`` > 0, that many texts per class are first taught to the classes as
    examples (the only use of the gold labels besides scoring) and left out of the scores.
    ``progress`` (e.g. ``tqdm.tqdm``) shows the texts classified so far.
    """
    async with scratch_service(vectors) as service:
        for label in data.labels:
            await service.add_class(_GUILD, label, data.descriptions.get(label, ""))
        taught = pick_examples(data, examples, seed) if examples > 0 else {}
        for row, label in taught.items():
            with contextlib.suppress(UnknownWordsError):  # an admin could not add it either
                await service.add_example(_GUILD, label, data.rows[row][1])
        if taught:
            data = replace(data, rows=[r for i, r in enumerate(data.rows) if i not in taught])
        predicted: list[str] = []
        abstained: list[bool] = []
        best_two: list[tuple[tuple[str, float], ...]] = []  # (class, confidence), best first

        async def answer(text: str) -> Classification | None:
            try:
                # The runner-up is what the text would get were the top class not there.
                return await service.classify(_GUILD, text, top_k=2)
            except UnknownWordsError:
                return None  # no known word: no answer, counted as wrong

        bar = progress(total=len(data.rows), desc="classifying", unit="text") if progress else None
        started = time.perf_counter()
        # Many calls in flight at once, as on a busy server: the service batches them.
        for first in range(0, len(data.rows), _IN_FLIGHT):
            chunk = data.rows[first : first + _IN_FLIGHT]
            for result in await asyncio.gather(*(answer(text) for _, text in chunk)):
                predicted.append("" if result is None else result.top.name)
                abstained.append(result is None or result.abstained)
                best_two.append(
                    ()
                    if result is None
                    else tuple((p.name, p.confidence) for p in result.predictions)
                )
            if bar is not None:
                bar.update(len(chunk))
        elapsed = time.perf_counter() - started
        if bar is not None:
            bar.close()
    gold = [g for g, _ in data.rows]
    n = len(gold)
    correct = [g == p for g, p in zip(gold, predicted, strict=True)]
    kept = [c for c, a in zip(correct, abstained, strict=True) if not a]
    report: dict[str, Any] = {
        "texts": n,
        "classes": len(data.labels),
        "described": bool(data.descriptions),
        "accuracy": sum(correct) / n if n else 0.0,
        "macro_f1": macro_f1(gold, predicted, data.labels),
        "coverage": len(kept) / n if n else 0.0,
        "accuracy_when_answered": sum(kept) / len(kept) if kept else 0.0,
        "texts_per_second": n / elapsed if elapsed else 0.0,
        "open_set_auroc": open_set_auroc(gold, best_two, data.labels),
    }
    if naive:
        baseline = NaiveClassifier(
            vectors, [f"{label} {data.descriptions.get(label, '')}" for label in data.labels]
        )
        guesses = [baseline.predict(text) for _, text in data.rows]
        report["naive_accuracy"] = (
            sum(
                1
                for (g, _), i in zip(data.rows, guesses, strict=True)
                if i is not None and data.labels[i] == g
            )
            / n
            if n
            else 0.0
        )
    if predictions_out is not None:
        with predictions_out.open("w", encoding="utf-8") as fh:
            for p, g, a in zip(predicted, gold, abstained, strict=True):
                fh.write(f"{p}\t{g}\t{int(a)}\n")
    return report
