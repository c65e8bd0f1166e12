"""How far the built-in model's text vectors can go: a diagnostic, not a method.

A multinomial logistic regression is *trained on the test labels* (5-fold cross-validation)
over the same unit text vectors that zsl scores with. A zero-shot method that reads only these
vectors cannot expect to beat a classifier that was shown four fifths of the answers, so this
bounds what any re-scoring of the built-in model can reach.

    python benchmarks/ceiling.py ../shared/bench/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize  # gensim's own dependency

from zsl.embedding import Encoded, Encoder
from zsl.evaluation import read_dataset
from zsl.vectors import DEFAULT_MODEL, load_vectors

FOLDS = 5
STRENGTH = 10.0
"""Inverse L2 penalty (scikit-learn's C), the same for every data set."""


def _fit(x: npt.NDArray[np.float64], y: npt.NDArray[np.intp], classes: int) -> npt.NDArray[Any]:
    """Weights of a softmax regression with an L2 penalty, by L-BFGS."""
    onehot = np.eye(classes)[y]

    def loss(flat: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        w = flat.reshape(x.shape[1], classes)
        logits = x @ w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        value = -np.sum(onehot * np.log(p + 1e-12)) + 0.5 / STRENGTH * np.sum(w[:-1] ** 2)
        grad = x.T @ (p - onehot)
        grad[:-1] += w[:-1] / STRENGTH
        return float(value), grad.ravel()

    start = np.zeros(x.shape[1] * classes)
    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 3000})
    return np.asarray(result.x.reshape(x.shape[1], classes))


def ceiling(encoder: Encoder, folder: Path) -> tuple[float, float, int]:
    """Cross-validated accuracy, the majority class's share, and the number of texts."""
    data = read_dataset(folder, names_only=True)
    index = {label: i for i, label in enumerate(data.labels)}
    y = np.array([index[gold] for gold, _ in data.rows], dtype=np.intp)
    encoded = encoder.encode_many([text for _, text in data.rows])
    x = np.array(
        [e.vector if isinstance(e, Encoded) else np.zeros(encoder.dim) for e in encoded],
        dtype=np.float64,
    )
    x = np.hstack([x, np.ones((len(x), 1))])  # the bias, not penalised
    folds = np.random.default_rng(0).permutation(len(y)) % FOLDS
    predicted = np.empty_like(y)
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        weights = _fit(x[train], y[train], len(data.labels))
        predicted[test] = np.argmax(x[test] @ weights, axis=1)
    return float(np.mean(predicted == y)), float(np.bincount(y).max() / len(y)), len(y)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder of data set folders")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="vectors to use (default: the built-in GloVe)"
    )
    args = parser.parse_args()
    encoder = Encoder(load_vectors(args.model))
    print("| data set | texts | supervised ceiling (5-fold) | majority class |")
    print("| --- | --- | --- | --- |")
    for folder in sorted(p for p in args.data.iterdir() if (p / "test.tsv").exists()):
        accuracy, majority, n = ceiling(encoder, folder)
        print(f"| {folder.name} | {n} | {accuracy:.1%} | {majority:.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
