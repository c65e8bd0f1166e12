"""Names-only accuracy and speed: a zsl model beside all-MiniLM-L6-v2 text-vs-label cosine.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
    python benchmarks/compare_transformer.py --model distilled.kv ../shared/bench/data/*

For each data set folder (``test.tsv``, ``labels.txt``): the zsl model through the public API,
exactly as ``zsl --model MODEL eval DIR --names-only`` scores it, and the transformer embedding
each text and each label name, the highest cosine winning. Speed is CPU time per text on this
machine, one thread, on the first ``--latency-texts`` texts: zsl's word-vector path (encode and
rank, as the service runs it in its worker thread), and the transformer one text at a time (what
a bot does) and in batches of 64 (its best case). ``--cache`` keeps the transformer's embeddings
of the whole test sets (for accuracy) between runs; timings are always measured afresh. Run it
with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` so that CPU time is work, not idle threads
spinning (torch is set to one thread here).
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
from zsl.evaluation import evaluate, read_dataset


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--model", required=True, help="the zsl model (e.g. a distilled .kv)")
    parser.add_argument("--cache", type=Path, help="folder to keep transformer text embeddings")
    parser.add_argument("--latency-texts", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # The transformer ships inside a package: never ask the Hugging Face hub for anything.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    vectors = load_vectors(args.model)
    transformer = load_minilm()
    import torch

    torch.set_num_threads(1)
    rows = []
    for folder in args.folders:
        data = read_dataset(folder, names_only=True)
        texts = [t for _, t in data.rows]
        gold = np.array([data.labels.index(g) for g, _ in data.rows])

        report = asyncio.run(evaluate(vectors, data))
        zsl_seconds = _zsl_cpu_per_text(vectors, data, texts[: args.latency_texts])

        labels, _ = _cached_encode(transformer, data.labels, None)
        encoded, _ = _cached_encode(transformer, texts, args.cache)
        st_accuracy = float(np.mean((encoded @ labels.T).argmax(axis=1) == gold))
        sample = texts[: args.latency_texts]
        single = []
        for text in sample:
            started = time.process_time()
            transformer.encode([text], normalize_embeddings=True)
            single.append(time.process_time() - started)
        started = time.process_time()
        transformer.encode(sample, batch_size=64, normalize_embeddings=True)
        batched = (time.process_time() - started) / len(sample)
        rows.append(
            {
                "data": folder.name,
                "texts": len(texts),
                "zsl_accuracy": report["accuracy"],
                "transformer_accuracy": st_accuracy,
                "zsl_ms_per_text": 1e3 * zsl_seconds,
                "transformer_ms_per_text_batched": 1e3 * batched,
                "transformer_ms_per_text_single": 1e3 * statistics.mean(single),
            }
        )
        print(f"done {folder.name}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"model: {vectors.name} ({len(vectors):,} words x {vectors.dim}); CPU ms per text, 1 thread"
    )
    print(
        "| data | zsl | all-MiniLM-L6-v2 | zsl ms | MiniLM ms batched | MiniLM ms single |"
        " speed-up (single) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['data']} | {100 * r['zsl_accuracy']:.1f} | "
            f"{100 * r['transformer_accuracy']:.1f} | {r['zsl_ms_per_text']:.3f} | "
            f"{r['transformer_ms_per_text_batched']:.2f} | "
            f"{r['transformer_ms_per_text_single']:.2f} | "
            f"{r['transformer_ms_per_text_single'] / r['zsl_ms_per_text']:.0f}x |"
        )
    mean_zsl = statistics.mean(r["zsl_accuracy"] for r in rows)
    mean_st = statistics.mean(r["transformer_accuracy"] for r in rows)
    print(f"| mean | {100 * mean_zsl:.1f} | {100 * mean_st:.1f} | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
