"""Does refitting the confidence logistic for a model generalise? Leave one data set out.

    python benchmarks/calibration.py ../shared/bench/data [MODEL]

For every data set folder and both protocols (names only, described), each text's top score
and whether the top class is right. A logistic ``1 / (1 + exp(-k (score - m)))`` is fitted on
all of them pooled (each combination weighing the same), then, for each data set, on the others
only and checked on it: the expected calibration error (ECE, 10 bins) of the held-out fit
beside that of the shipped ``ScoringConfig`` midpoint and steepness.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from zsl import ScoringConfig, UnknownWordsError, load_vectors
from zsl.evaluation import DataSet, read_dataset, scratch_service

Scores = npt.NDArray[np.float64]  # rows of (top score, 1.0 if right)


async def collect(model: str, data: DataSet) -> Scores:
    async with scratch_service(load_vectors(model)) as service:
        for label in data.labels:
            await service.add_class(1, label, data.descriptions.get(label, ""))

        async def one(gold: str, text: str) -> tuple[float, float] | None:
            try:
                result = await service.classify(1, text, top_k=1)
            except UnknownWordsError:
                return None
            return result.top.score, float(result.top.name == gold)

        rows = []
        for start in range(0, len(data.rows), 256):
            chunk = data.rows[start : start + 256]
            rows += [r for r in await asyncio.gather(*(one(g, t) for g, t in chunk)) if r]
        return np.asarray(rows, dtype=np.float64)


def fit(groups: list[Scores]) -> tuple[float, float]:
    """Weighted maximum likelihood by Newton's method; returns (midpoint, steepness)."""
    x = np.concatenate([g[:, 0] for g in groups])
    y = np.concatenate([g[:, 1] for g in groups])
    w = np.concatenate([np.full(len(g), 1.0 / len(g)) for g in groups])
    a = b = 0.0  # the logit is a * score + b
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        gradient = np.array([np.sum(w * (p - y) * x), np.sum(w * (p - y))])
        v = w * p * (1 - p)
        hessian = np.array([[np.sum(v * x * x), np.sum(v * x)], [np.sum(v * x), np.sum(v)]])
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return -b / a, a


def ece(scores: Scores, midpoint: float, steepness: float, bins: int = 10) -> float:
    confidence = 1.0 / (1.0 + np.exp(-steepness * (scores[:, 0] - midpoint)))
    error = 0.0
    for low in np.linspace(0.0, 1.0, bins, endpoint=False):
        chosen = (confidence >= low) & (confidence < low + 1.0 / bins)
        if chosen.any():
            gap = abs(confidence[chosen].mean() - scores[chosen, 1].mean())
            error += chosen.sum() / len(confidence) * gap
    return error


def main(root: Path, model: str) -> None:
    folders = sorted(p for p in root.iterdir() if (p / "test.tsv").exists())
    groups = {
        (folder.name, names): asyncio.run(collect(model, read_dataset(folder, names)))
        for folder in folders
        for names in (True, False)
    }
    shipped = ScoringConfig()
    midpoint, steepness = fit(list(groups.values()))
    print(f"{model}: pooled fit midpoint {midpoint:.2f}, steepness {steepness:.3f}")
    held_out, current = [], []
    for folder in folders:
        m, k = fit([g for (name, _), g in groups.items() if name != folder.name])
        tests = [g for (name, _), g in groups.items() if name == folder.name]
        held_out.append(np.mean([ece(t, m, k) for t in tests]))
        current.append(np.mean([ece(t, shipped.midpoint, shipped.steepness) for t in tests]))
        print(
            f"  without {folder.name}: midpoint {m:.2f}, steepness {k:.3f}; ECE on it "
            f"{held_out[-1]:.3f} (shipped fit: {current[-1]:.3f})"
        )
    print(f"  mean held-out ECE {np.mean(held_out):.3f}, shipped fit {np.mean(current):.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "minilm-256d")
