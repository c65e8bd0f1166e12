"""The module map of STYLE.md, checked: the core never pulls in Discord or does import-time I/O."""

from __future__ import annotations

import subprocess
import sys


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
