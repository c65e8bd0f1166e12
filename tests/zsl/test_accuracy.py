"""Accuracy floors of the default model, measured through `zsl eval`'s own code.

A regression guard: every figure below was measured with `zsl eval DIR [--names-only]` on the
default model (the shipped minilm-256d table), and each floor sits a few points below it.
Evaluation is deterministic (the same texts, classes and model give the same predictions), so a
floor only fails when the scoring really got worse. When a change improves accuracy, measure
again and raise the figure here, so that the guard keeps up.

Two small data sets written for this project live in tests/data (chat_topics, chat_intents) and
always run. The shared benchmark sets (evaluation only, never copied here) run too when their
folder exists: $ZSL_BENCH_DATA, or ../shared/bench/data beside the repository.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from zsl import WordVectors
from zsl.evaluation import evaluate, read_dataset

OWN_DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]

# Accuracy in %, (data set, protocol) -> measured. "names": `zsl eval DIR --names-only`;
# "described": `zsl eval DIR` (with descriptions.tsv).
OWN_MEASURED = {
    ("chat_topics", "names"): 82.1,
    ("chat_topics", "described"): 83.3,
    ("chat_intents", "names"): 64.6,
    ("chat_intents", "described"): 89.6,
}
OWN_SLACK = 4.5  # 144-240 texts: one text is 0.4-0.7 points
NAIVE_MARGIN = 2.0
"""zsl must beat plain averaging of the same vectors by this many points, averaged over the own
sets and protocols (measured: 3.6). It was 10 points on each before the default table was refined
on sentences: refining trains exactly what plain averaging does, so averaging the default table
is strong (chat_intents names only: 64.6, as much as zsl; GloVe averaged gets 26.5 on the shared
sets names only, see the README)."""

SHARED_MEASURED = {
    ("ag_news", "names"): 71.2,
    ("ag_news", "described"): 82.3,
    ("dbpedia14_sample", "names"): 68.2,
    ("dbpedia14_sample", "described"): 84.2,
    ("snips", "names"): 75.3,
    ("snips", "described"): 86.4,
    ("banking77", "names"): 51.3,
    ("emotion", "names"): 45.8,
    ("emotion", "described"): 53.4,
}
SHARED_SLACK = 2.0  # 700-7,600 texts each


def _shared_root() -> Path | None:
    given = os.environ.get("ZSL_BENCH_DATA")
    if given:
        return Path(given)  # asked for explicitly: a missing folder fails, it is not skipped
    default = REPO.parent / "shared" / "bench" / "data"
    return default if default.is_dir() else None


def _evaluate(vectors: WordVectors, folder: Path, protocol: str, **options: Any) -> dict[str, Any]:
    data = read_dataset(folder, names_only=protocol == "names")
    assert (protocol == "described") == bool(data.descriptions), f"{folder}: {protocol}"
    return asyncio.run(evaluate(vectors, data, **options))


@pytest.fixture(scope="module")
def own_reports(
    default_model: WordVectors, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], dict[str, Any]]:
    """One evaluation per own data set and protocol, with the naive baseline and predictions."""
    folder = tmp_path_factory.mktemp("predictions")
    reports = {}
    for name, protocol in OWN_MEASURED:
        out = folder / f"{name}-{protocol}.tsv"
        report = _evaluate(
            default_model, OWN_DATA / name, protocol, naive=True, predictions_out=out
        )
        reports[name, protocol] = {**report, "predictions": out.read_text(encoding="utf-8")}
    return reports


@pytest.mark.parametrize("name", sorted({name for name, _ in OWN_MEASURED}))
def test_own_data_sets_are_balanced_and_fully_described(name: str) -> None:
    data = read_dataset(OWN_DATA / name, names_only=False)

    counts = Counter(gold for gold, _ in data.rows)

    assert sorted(counts) == sorted(data.labels)
    assert min(counts.values()) >= 20
    assert max(counts.values()) == min(counts.values())
    assert sorted(data.descriptions) == sorted(data.labels)
    assert (OWN_DATA / name / "SOURCE.md").is_file()


def test_evaluation_is_deterministic(
    default_model: WordVectors,
    own_reports: dict[tuple[str, str], dict[str, Any]],
    tmp_path: Path,
) -> None:
    first = own_reports["chat_topics", "described"]
    out = tmp_path / "again.tsv"

    again = _evaluate(default_model, OWN_DATA / "chat_topics", "described", predictions_out=out)

    assert out.read_text(encoding="utf-8") == first["predictions"]
    assert again["accuracy"] == first["accuracy"]
    assert again["macro_f1"] == first["macro_f1"]


def test_zsl_beats_naive_averaging_of_the_same_vectors(
    own_reports: dict[tuple[str, str], dict[str, Any]],
) -> None:
    gains = {
        key: 100 * (report["accuracy"] - report["naive_accuracy"])
        for key, report in own_reports.items()
    }

    assert sum(gains.values()) / len(gains) >= NAIVE_MARGIN, gains


@pytest.mark.parametrize(("name", "protocol"), list(OWN_MEASURED))
def test_accuracy_floor_on_own_data(
    own_reports: dict[tuple[str, str], dict[str, Any]], name: str, protocol: str
) -> None:
    floor = OWN_MEASURED[name, protocol] - OWN_SLACK

    accuracy = 100 * own_reports[name, protocol]["accuracy"]

    assert accuracy >= floor, (
        f"{name} {protocol}: accuracy {accuracy:.1f}% fell below the floor {floor:.1f}% "
        f"(measured {OWN_MEASURED[name, protocol]}%)"
    )


@pytest.mark.skipif(
    _shared_root() is None,
    reason="the shared benchmark folder ../shared/bench/data is absent; "
    "set ZSL_BENCH_DATA to its path to check the floors on the five shared data sets",
)
@pytest.mark.parametrize(("name", "protocol"), list(SHARED_MEASURED))
def test_accuracy_floor_on_shared_benchmarks(
    default_model: WordVectors, name: str, protocol: str
) -> None:
    root = _shared_root()
    assert root is not None
    floor = SHARED_MEASURED[name, protocol] - SHARED_SLACK

    report = _evaluate(default_model, root / name, protocol)

    accuracy = 100 * report["accuracy"]
    assert report["texts"] > 0
    assert accuracy >= floor, (
        f"{name} {protocol}: accuracy {accuracy:.1f}% fell below the floor {floor:.1f}% "
        f"(measured {SHARED_MEASURED[name, protocol]}%)"
    )
