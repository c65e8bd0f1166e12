"""The module map of the README's architecture section, checked: the core never pulls in
Discord, never reads the environment, and no module reaches into another's private names."""

from __future__ import annotations

import ast
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modules(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path.relative_to(ROOT), ast.parse(path.read_text(encoding="utf-8"))


def _imported_modules(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_importing_zsl_does_not_import_discord_or_gensim() -> None:
    code = (
        "import sys, zsl, zsl.cli;"
        "print(sorted(m for m in ('discord', 'gensim') if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )

    # gensim is imported only when a model is actually loaded, so `zsl --help` is instant.
    assert result.stdout.strip() == "[]"


def test_public_api_names_exist_once() -> None:
    import zsl

    assert len(set(zsl.__all__)) == len(zsl.__all__)  # ruff's RUF022 keeps the order sorted
    assert [name for name in zsl.__all__ if not hasattr(zsl, name)] == []


def test_only_the_vectors_package_imports_gensim() -> None:
    importers = [
        str(path)
        for path, tree in _modules("zsl", "bot")
        if any(name.split(".")[0] == "gensim" for name in _imported_modules(tree))
    ]

    assert importers
    assert [path for path in importers if not path.startswith("zsl/vectors/")] == []


def test_the_core_reads_no_environment_variable_except_in_the_command_line_entry_point() -> None:
    readers = []
    for path, tree in _modules("zsl"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(f"{path}:{node.lineno}")

    assert [r for r in readers if not r.startswith("zsl/cli.py:")] == []


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{path}:{node.lineno} {node.module}.{alias.name}"
        for path, tree in _modules("zsl", "bot", "benchmarks")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
    ]

    assert private == []


def test_opening_a_service_leaves_the_process_blas_threads_alone(tmp_path: Path) -> None:
    # A library call must not change the whole process; entry points choose (one thread).
    code = """
import asyncio, sys
import numpy as np
from threadpoolctl import threadpool_info
import zsl

def blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

words = {"goal": 0, "match": 1, "song": 2}
vectors = zsl.WordVectors("tiny", np.eye(3, dtype=np.float32), words)
before = blas_threads()
async def main():
    service = await zsl.ZeroShotService.open(vectors, sys.argv[1])
    await service.close()
asyncio.run(main())
after = blas_threads()
zsl.configure_process()
print(before, after, blas_threads())
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}

    result = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path}/z.sqlite3"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2] [2] [1]"  # before, after opening, after the helper


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")
@pytest.mark.parametrize(("configured", "heaps"), [(False, "several"), (True, "one")])
def test_configure_process_makes_every_thread_allocate_from_one_heap(
    configured: bool, heaps: str
) -> None:
    # A heap per thread keeps what each frees for that heap: memory the guild cache's budget
    # never sees (10^5 guilds used once, budget 256 MB: 441 MB beside the model, 332 with one).
    code = f"""
import ctypes, threading
import numpy as np
import zsl
if {configured}:
    zsl.configure_process()

def build():
    for _ in range(50):
        kept = [np.ones(20_000, np.float32) for _ in range(20)]

threads = [threading.Thread(target=build) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena n:" paragraph per heap, on stderr
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    arenas = sum(line.startswith("Arena ") for line in result.stderr.splitlines())
    assert (arenas == 1) if heaps == "one" else (arenas > 1)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc thresholds are glibc's")
@pytest.mark.parametrize("configured", [False, True])
def test_configure_process_keeps_a_guilds_temporaries_in_the_heap(configured: bool) -> None:
    # Mapped afresh and given back after every guild, a few MB of temporaries are faulted in
    # again each time (a cold guild 26 ms instead of 21 when the encoder's tables were mapped).
    code = f"""
import ctypes
import numpy as np
import zsl
if {configured}:
    zsl.configure_process()
for _ in range(10):
    temporaries = [np.ones(2_000_000, np.float32) for _ in range(3)]  # 8 MB each
    del temporaries
ctypes.CDLL(None).malloc_stats()
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    figures = [line.split("=") for line in result.stderr.splitlines() if "=" in line]
    heap_bytes = int(figures[0][1])  # the heap's (Arena 0) system bytes, first
    largest_mapped = int(dict((k.strip(), v) for k, v in figures)["max mmap bytes"])
    if configured:
        assert largest_mapped < 8_000_000  # the temporaries never were
        assert heap_bytes >= 3 * 8_000_000  # kept for the next guild's temporaries
    else:
        assert largest_mapped >= 8_000_000


@pytest.mark.parametrize("configured", [False, True])
def test_configure_process_lets_a_cache_of_guilds_grow_without_collections(
    configured: bool,
) -> None:
    # A collection stops every thread, and a full one walks every cached guild: thousands of
    # objects kept (a cache filling up) must not set one off every 700.
    code = f"""
import gc
import zsl
if {configured}:
    zsl.configure_process()
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
gc.collect()
collections.clear()
kept = [[object()] for _ in range(40_000)]  # tracked containers, like a guild's classes
print(len(collections))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    assert (int(result.stdout) == 0) if configured else (int(result.stdout) > 10)


def test_the_readme_library_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Library\n", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    # The example uses the per-user cache folder: point it at this session's converted model.
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "zsl").symlink_to(os.environ["ZSL_CACHE_DIR"])
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    name, confidence, abstained = result.stdout.split()
    assert (name, abstained) == ("sports", "False")
    assert 0 < float(confidence) <= 1
