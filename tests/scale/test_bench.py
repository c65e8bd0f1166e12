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
        *("--scale-guilds", "40", "60", "--scale-sqlite-max", "40", "--scale-cold", "5"),
        *("--scale-active", "20", "--scale-calls", "30", "--scale-processes", "2"),
        *("--scale-outage", "1"),
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
    for title in (
        "latency",
        "throughput",
        "hostile",
        "cold start",
        "memory",
        "registry",
        "writes",
        "scale",
    ):
        assert f"\n{title}: " in out, f"no {title} section in:\n{out}"
    others, _, scale_table = out.partition("\nscale: ")
    rows = {line.split()[0]: line.split() for line in others.splitlines() if line.strip()}
    assert float(rows["12"][1]) > 0  # service latency at 12 classes
    assert float(rows["12"][3]) > 0  # the service's CPU time a call
    assert rows["40"][1] == "4"  # throughput: 40 calls, 20 in flight, over 4 guilds
    assert rows["30"][1] == "90"  # registry: 30 guilds x 3 classes
    assert rows["SQLite"][1] == rows["PostgreSQL"][1] == "3"
    assert "converted, 1 BLAS thread" in out
    assert rows["converted"][1] != "-"
    hostile = [line for line in out.splitlines() if "x 2000 (NFKC" in line]
    assert len(hostile) == 1
    assert float(hostile[0].split()[-3]) < 100  # the peak MB that 64 such texts add
    scale = {(line.split()[0], line.split()[1]): line.split() for line in scale_table.splitlines()}
    assert scale[("SQLite", "60")][-5:] == ["not", "measured:", "over", "40", "here"]
    for store, guilds in (("SQLite", "40"), ("PostgreSQL", "40"), ("PostgreSQL", "60")):
        row = scale[(store, guilds)]
        assert float(row[2]) > 0  # open s
        assert float(row[5]) >= float(row[4]) > 0  # cold first use: p99 >= median
        assert row[6] == "20"  # active guilds
        assert float(row[9].replace(",", "")) > 0  # texts/s
        assert float(row[11].replace(",", "")) > 0  # fixed MB: the encoder's tables at least
    for guilds in ("40", "60"):
        # After the outage, only the 5 cold guilds that changed are read again, of the 6 built.
        assert scale[("PostgreSQL", guilds)][-2] == "5/6"
        assert float(scale[("PostgreSQL", guilds)][-1]) > 0  # catch-up s (no note follows)
    assert scale[("SQLite", "40")][-2:] == ["-", "-"]  # a file has no outage
