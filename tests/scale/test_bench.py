"""`zsl bench` prints every section; it times nothing here, it only has to work end to end."""

from __future__ import annotations

import subprocess
import sys

from zsl import WordVectors


def test_bench_with_tiny_sizes_prints_every_section(glove: WordVectors, pg_url: str) -> None:
    args = [
        *("--classes", "5", "12", "--repeat", "5"),
        *("--concurrent", "20", "--guilds", "4", "--calls", "40"),
        *("--starts", "1", "--no-baselines", "--processes", "2"),
        *("--registry", "30", "3", "--writes", "3", "--postgres", pg_url),
    ]

    result = subprocess.run(
        [sys.executable, "-m", "zsl.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("latency", "throughput", "hostile", "cold start", "memory", "registry", "writes"):
        assert f"\n{title}: " in out, f"no {title} section in:\n{out}"
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert float(rows["12"][1]) > 0  # service latency at 12 classes
    assert rows["40"][1] == "4"  # throughput: 40 calls, 20 in flight, over 4 guilds
    assert rows["30"][1] == "90"  # registry: 30 guilds x 3 classes
    assert rows["SQLite"][1] == rows["PostgreSQL"][1] == "3"
    assert "converted, 1 BLAS thread" in out
    assert rows["converted"][1] != "-"
    hostile = [line for line in out.splitlines() if "x 2000 (NFKC" in line]
    assert len(hostile) == 1
    assert float(hostile[0].split()[-3]) < 100  # the peak MB that 64 such texts add
