"""Accuracy tables over a folder of data sets, through `zsl eval`'s own code path.

    python benchmarks/accuracy.py ../shared/bench/data [--model M] [--examples 0 1 3 5]

For every data set (a sub-folder with test.tsv and labels.txt) and both protocols (names only;
described, when descriptions.tsv exists) it prints naive averaging beside zsl, and zsl taught
k examples per class (drawn with seeds 0 and 1, averaged; the examples are left out of the
scores). Nothing here is tuned: it only measures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from zsl import DEFAULT_MODEL, load_vectors
from zsl.evaluation import evaluate, read_dataset


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder of data set folders")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--examples", type=int, nargs="*", default=[0, 1, 3, 5])
    parser.add_argument("--seeds", type=int, default=2, help="example draws to average")
    args = parser.parse_args()
    vectors = load_vectors(args.model)
    header = ["data set", "protocol", "naive"] + [f"zsl k={k}" for k in args.examples]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    means: dict[tuple[str, str], list[float]] = {}
    for folder in sorted(p for p in args.root.iterdir() if (p / "test.tsv").exists()):
        for names_only in (True, False):
            data = read_dataset(folder, names_only)
            if not names_only and not data.descriptions:
                continue
            protocol = "names" if names_only else "described"
            cells = []
            for k in args.examples:
                seeds = range(args.seeds) if k else range(1)
                runs = [
                    await evaluate(vectors, data, naive=(k == 0), examples=k, seed=seed)
                    for seed in seeds
                ]
                if k == 0:
                    cells.append(100 * runs[0]["naive_accuracy"])
                    means.setdefault((protocol, "naive"), []).append(cells[-1])
                cells.append(100 * statistics.mean(r["accuracy"] for r in runs))
                means.setdefault((protocol, f"k={k}"), []).append(cells[-1])
            print(f"| {folder.name} | {protocol} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    for protocol in ("names", "described"):
        row = [statistics.mean(v) for (p, _), v in means.items() if p == protocol]
        if row:
            print(f"| mean | {protocol} | " + " | ".join(f"{c:.1f}" for c in row) + " |")


if __name__ == "__main__":
    asyncio.run(main())
