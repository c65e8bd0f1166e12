"""Leave-one-class-out abstention: does "no class fits" fire when the right class is missing?

    python benchmarks/abstention.py ../shared/bench/data [--model M]

For every data set and protocol, each class in turn is removed from the class set: texts of the
removed class should abstain, the others should not. Reported per data set: the AUROC of the
confidence at telling the two apart (averaged over the removed classes), and at a few
thresholds the coverage and accuracy on the full class set and the share of removed-class
texts that abstain. Class scores are calibrated per class, so removing a class changes no other
class's score: each text is scored once.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from zsl import (
    DEFAULT_MODEL,
    ClassDefinition,
    Encoder,
    ScoringConfig,
    UnknownWordsError,
    load_vectors,
)
from zsl.classes import ClassSet, embed_class
from zsl.classifier import calibrated_scores
from zsl.evaluation import read_dataset

THRESHOLDS = (0.3, 0.4, 0.5)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half."""
    if not len(positive) or not len(negative):
        return float("nan")
    both = np.concatenate([positive, negative])
    order = both.argsort(kind="stable")
    ranks = np.empty(len(both))
    ranks[order] = np.arange(1, len(both) + 1)
    for value in np.unique(both):  # average ranks over ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    n = len(positive)
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * len(negative)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    encoder = Encoder(load_vectors(args.model))
    scoring = ScoringConfig()
    print(
        "| data set | protocol | AUROC | "
        + " | ".join(f"t={t}: coverage / accuracy / removed abstain" for t in THRESHOLDS)
        + " |"
    )
    print("|" + " --- |" * (3 + len(THRESHOLDS)))
    aurocs = []
    for folder in sorted(p for p in args.root.iterdir() if (p / "test.tsv").exists()):
        for names_only in (True, False):
            data = read_dataset(folder, names_only)
            if not names_only and not data.descriptions:
                continue
            classes = ClassSet(
                tuple(
                    embed_class(encoder, ClassDefinition(label, data.descriptions.get(label, "")))
                    for label in data.labels
                )
            )
            scores, gold = [], []
            for label, text in data.rows:
                try:
                    encoded = encoder.encode(text)
                except UnknownWordsError:
                    continue
                scores.append(calibrated_scores([encoded], [classes])[0])
                gold.append(data.labels.index(label))
            z, y = np.array(scores), np.array(gold)
            confidence = 1 / (1 + np.exp(-scoring.steepness * (z - scoring.midpoint)))
            per_class = []
            for removed in range(z.shape[1]):
                kept = np.delete(confidence, removed, axis=1).max(axis=1)
                per_class.append(auroc(kept[y != removed], kept[y == removed]))
            value = float(np.nanmean(per_class))
            aurocs.append(value)
            cells = []
            for t in THRESHOLDS:
                answered = confidence.max(axis=1) >= t
                right = confidence.argmax(axis=1) == y
                abstain_removed = statistics.mean(
                    float(np.mean(np.delete(confidence, k, axis=1)[y == k].max(axis=1) < t))
                    for k in range(z.shape[1])
                    if np.any(y == k)
                )
                cells.append(
                    f"{answered.mean():.0%} / {right[answered].mean():.0%} / {abstain_removed:.0%}"
                )
            protocol = "names" if names_only else "described"
            print(f"| {folder.name} | {protocol} | {value:.3f} | " + " | ".join(cells) + " |")
    print(f"| mean | | {statistics.mean(aurocs):.3f} |")


if __name__ == "__main__":
    main()
