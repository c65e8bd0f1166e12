"""Share of the tokens of each data set's texts that a model does not know, with and without
building words from WordPiece pieces.

    python benchmarks/unknown_words.py ../shared/bench/data   # GloVe needs the glove extra
"""

from __future__ import annotations

import sys
from pathlib import Path

from zsl import GLOVE_MODEL, load_vectors, tokenize


def main(root: Path) -> None:
    models = {"GloVe 6B 50d": load_vectors(GLOVE_MODEL), "default": load_vectors()}
    print("| data set | " + " | ".join(models) + " | default, words only |")
    for folder in sorted(p for p in root.iterdir() if (p / "test.tsv").exists()):
        lines = (folder / "test.tsv").read_text(encoding="utf-8").splitlines()
        tokens = [t for line in lines for t in tokenize(line.partition("\t")[2])]
        cells = []
        words_only = 0
        for vectors in models.values():
            missing = [t for t in tokens if vectors.index(t) is None]
            words_only = len(missing)
            if vectors.subword_vector is not None:
                missing = [t for t in missing if vectors.subword_vector(t).size == 0]
            cells.append(f"{len(missing) / len(tokens):.2%}")
        cells.append(f"{words_only / len(tokens):.2%}")
        print(f"| {folder.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
