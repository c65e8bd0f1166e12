from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zsl import WordVectors
from zsl.cli import main, read_class_file

CLASSES = {"sports": "football match team goal", "music": "song album band concert"}


def _zsl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zsl.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def class_file(tmp_path: Path) -> Path:
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(CLASSES), encoding="utf-8")
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    # A tiny hand-written data set in the bench format (not one of the shared test sets).
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "labels.txt").write_text("sports\nmusic\n", encoding="utf-8")
    (folder / "descriptions.tsv").write_text(
        "sports\tfootball match team goal\nmusic\tsong album band concert\n", encoding="utf-8"
    )
    rows = [
        ("sports", "a late goal won the match for the home team"),
        ("sports", "the striker was injured before the final"),
        ("music", "the band released their second album"),
        ("music", "tickets for the concert sold out in minutes"),
        ("music", "qxzvvb wqqxjk"),
    ]
    (folder / "test.tsv").write_text("".join(f"{g}\t{t}\n" for g, t in rows), encoding="utf-8")
    return folder


class TestClassFiles:
    def test_json_object_list_and_tsv(self, tmp_path: Path) -> None:
        (tmp_path / "a.json").write_text(json.dumps(CLASSES), encoding="utf-8")
        (tmp_path / "b.json").write_text(
            json.dumps([{"name": n, "description": d} for n, d in CLASSES.items()]),
            encoding="utf-8",
        )
        (tmp_path / "c.tsv").write_text(
            "# comment\nsports\tfootball match team goal\nmusic\tsong album band concert\n",
            encoding="utf-8",
        )

        expected = list(CLASSES.items())
        for name in ("a.json", "b.json", "c.tsv"):
            assert read_class_file(tmp_path / name) == expected

    @pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"a": 3}'])
    def test_malformed_json_is_refused_plainly(
        self, tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "bad.json").write_text(content, encoding="utf-8")

        code = main(["classify", "--classes", str(tmp_path / "bad.json"), "hello"])

        assert code == 2
        assert capsys.readouterr().err.startswith("zsl: The class file")


def test_classify_arguments_and_stdin(glove: WordVectors, class_file: Path) -> None:
    by_args = _zsl("classify", "--classes", str(class_file), "--json", "What a goal!")
    by_stdin = _zsl(
        "classify", "--classes", str(class_file), stdin="the band played a new song\nqxzvvb\n"
    )

    assert by_args.returncode == 0, by_args.stderr
    answer = json.loads(by_args.stdout)
    assert answer["predictions"][0]["name"] == "sports"
    assert set(answer) >= {"abstained", "unknown_words", "evidence"}
    lines = by_stdin.stdout.splitlines()
    assert lines[0].endswith("the band played a new song")
    assert "music" in lines[0].split("\t")[1]
    assert lines[1].startswith("! The text cannot be classified")
    assert by_stdin.returncode == 1  # one text failed


def test_classify_from_a_store(glove: WordVectors, tmp_path: Path) -> None:
    import asyncio

    from zsl import ZeroShotService

    url = f"sqlite:///{tmp_path}/z.sqlite3"

    async def fill() -> None:
        async with await ZeroShotService.open(glove, url) as service:
            await service.add_class(7, "weather", "rain snow sunny forecast")

    asyncio.run(fill())

    result = _zsl("classify", "--store", url, "--guild", "7", "--json", "snow all week")

    assert json.loads(result.stdout)["predictions"][0]["name"] == "weather"


def test_eval_reports_and_writes_predictions(
    glove: WordVectors, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.tsv"

    result = _zsl("eval", str(dataset), "--json", "--naive", "--predictions", str(out))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["texts"] == 5
    assert report["accuracy"] == pytest.approx(0.8)  # the gibberish row has no answer
    assert 0 <= report["coverage"] <= 1
    assert report["texts_per_second"] > 0
    assert "naive_accuracy" in report
    assert "macro_f1" in report
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r[1] for r in rows] == ["sports", "sports", "music", "music", "music"]
    assert [r[0] for r in rows][:4] == ["sports", "sports", "music", "music"]
    assert rows[4] == ["", "music", "1"]
    assert all(r[2] in {"0", "1"} for r in rows)


def test_eval_names_only_ignores_descriptions(glove: WordVectors, dataset: Path) -> None:
    result = _zsl("eval", str(dataset), "--names-only", "--json")

    assert json.loads(result.stdout)["described"] is False


def test_eval_of_a_missing_folder_says_what_it_needs(tmp_path: Path) -> None:
    result = _zsl("eval", str(tmp_path / "nothing"))

    assert result.returncode == 2
    assert "test.tsv and labels.txt" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_prints_the_table_beside_the_naive_method(glove: WordVectors) -> None:
    result = _zsl("bench", "--sections", "latency", "--classes", "10", "20", "--repeat", "20")

    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["10", "20"]
    assert all(float(r[1]) > 0 and float(r[3]) > 0 for r in rows)


def test_convert_and_train_commands(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("gg ez noob rekt\nlag spike again gg\n" * 30, encoding="utf-8")

    trained = _zsl(
        "train",
        str(corpus),
        "-o",
        str(tmp_path / "slang.kv"),
        "--dim",
        "8",
        "--min-count",
        "2",
        "--epochs",
        "1",
    )
    from gensim.models import KeyedVectors

    KeyedVectors.load(str(tmp_path / "slang.kv")).save_word2vec_format(str(tmp_path / "s.txt"))
    converted = _zsl("convert", str(tmp_path / "s.txt"), str(tmp_path / "again.kv"))

    assert trained.returncode == 0, trained.stderr
    assert "ZSL_MODEL=" in trained.stdout
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "again.kv").exists()
    assert (tmp_path / "again.kv.vectors.npy").exists()


def test_convert_of_a_missing_file(tmp_path: Path) -> None:
    result = _zsl("convert", str(tmp_path / "nope.txt"), str(tmp_path / "out.kv"))

    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_eval_with_examples_teaches_and_leaves_them_out(glove: WordVectors, dataset: Path) -> None:
    result = _zsl("eval", str(dataset), "--names-only", "--examples", "1", "--seed", "3", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["texts"] == 3  # one text of each of the two labels taught


def test_examples_are_drawn_per_class_reproducibly(dataset: Path) -> None:
    from zsl.cli import pick_examples, read_dataset

    data = read_dataset(dataset, names_only=True)

    first, again = pick_examples(data, 2, seed=7), pick_examples(data, 2, seed=7)

    assert first == again
    assert sorted(first.values()) == ["music", "music", "sports", "sports"]
    assert all(data.rows[row][0] == label for row, label in first.items())
