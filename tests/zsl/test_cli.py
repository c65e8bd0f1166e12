from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zsl import WordVectors
from zsl.cli import main, read_class_file

CLASSES = {"sports": "football match team goal", "music": "song album band concert"}


def _zsl(
    *args: str, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zsl.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
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
    from zsl.evaluation import pick_examples, read_dataset

    data = read_dataset(dataset, names_only=True)

    first, again = pick_examples(data, 2, seed=7), pick_examples(data, 2, seed=7)

    assert first == again
    assert sorted(first.values()) == ["music", "music", "sports", "sports"]
    assert all(data.rows[row][0] == label for row, label in first.items())


# -- bad options, missing registries, CLI wording, byte order marks -----------------------------


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("the cat sat on the mat\nthe dog ate the bone\n", encoding="utf-8")
    return corpus


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--window", "-1", "a whole number of at least 1, not -1."),  # hung for ever
        ("--window", "0", "a whole number of at least 1, not 0."),
        ("--epochs", "0", "a whole number of at least 1, not 0."),  # was a traceback
        ("--dim", "0", "a whole number from 1 to 1024, not 0."),  # wrote a 0-dimension model
        ("--dim", "100000", "a whole number from 1 to 1024, not 100000."),
        ("--min-count", "0", "a whole number of at least 1, not 0."),
        ("--workers", "0", "a whole number of at least 1, not 0."),  # wrote untrained vectors
        ("--seed", "-1", "a whole number from 0 to 4294967295, not -1."),  # was a traceback
        ("--epochs", "two", "a whole number of at least 1, not 'two'."),
    ],
)
def test_train_refuses_an_out_of_range_option_without_hanging(
    tiny_corpus: Path, tmp_path: Path, option: str, value: str, allowed: str
) -> None:
    output = tmp_path / "t.kv"

    # The timeout makes a hang (gensim waiting on a dead worker thread) fail, not block.
    result = _zsl(
        "train", str(tiny_corpus), "-o", str(output), "--min-count", "1", option, value, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"zsl train: error: argument {option}: must be {allowed}"
    )
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_train_function_refuses_what_the_command_refuses(tiny_corpus: Path, tmp_path: Path) -> None:
    from zsl import ModelError
    from zsl.vectors import train_word2vec

    with pytest.raises(ModelError) as refused:
        train_word2vec(tiny_corpus, tmp_path / "t.kv", min_count=1, window=0)

    assert str(refused.value) == "The window must be at least 1, not 0."
    assert list(tmp_path.iterdir()) == [tiny_corpus]


def test_a_failing_training_thread_ends_the_training_with_a_sentence(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import gensim.models.word2vec

    from zsl import ModelError
    from zsl.vectors import train_word2vec

    def broken_batch(*args: object) -> int:
        raise ValueError("high <= 0")  # what gensim's own batch raised for --window -1

    # A fault inside gensim's worker threads that no option check can foresee.
    monkeypatch.setattr(gensim.models.word2vec, "train_batch_cbow", broken_batch)
    outcome: list[BaseException | None] = []

    def train() -> None:
        try:
            train_word2vec(tiny_corpus, tmp_path / "t.kv", min_count=1, epochs=3, workers=2)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    trainer = threading.Thread(target=train, daemon=True)  # daemon: a hang must not block exit
    trainer.start()
    trainer.join(timeout=60)

    assert not trainer.is_alive(), "training waited for ever on a dead worker thread"
    (error,) = outcome
    assert isinstance(error, ModelError)
    assert str(error).startswith(f"Training on {tiny_corpus} failed (ValueError: high <= 0).")
    assert not (tmp_path / "t.kv").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classify", "--top", "0", "x"], "argument --top: must be a whole number from 1 to 25"),
        (["classify", "--guild", "-1", "x"], "argument --guild: must be a whole number from 0 to"),
        (["eval", "d", "--examples", "-1"], "argument --examples: must be a whole number from 0"),
        (["distill", "-o", "x.kv", "--dim", "0"], "argument --dim: must be a whole number from 1"),
        (["distill", "-o", "x.kv", "--vocabulary", "0"], "argument --vocabulary: must be a whole"),
        (["distill", "-o", "x.kv", "--batch-size", "0"], "argument --batch-size: must be a whole"),
        (["bench", "--repeat", "0"], "argument --repeat: must be a whole number of at least 1"),
        (["bench", "--classes", "10", "0"], "argument --classes: must be a whole number of at"),
    ],
)
def test_every_subcommand_refuses_out_of_range_numbers(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "existing", [None, b"", b"not a registry"], ids=["missing", "empty", "text"]
)
def test_classify_refuses_a_store_that_does_not_exist(
    tmp_path: Path, existing: bytes | None
) -> None:
    if existing is None:
        path = tmp_path / "typo" / "x.db"
    else:
        path = tmp_path / "x.db"
        path.write_bytes(existing)
    before = sorted(p.name for p in tmp_path.rglob("*"))

    result = _zsl("classify", "--store", f"sqlite:///{path}", "hello")

    assert result.returncode == 2
    if existing == b"not a registry":
        assert result.stderr.startswith(f"zsl: The file {path} is not a usable class database")
    else:
        assert result.stderr == (
            f"zsl: There is no registry at {path}. Check the path, or run the bot once to "
            "create it.\n"
        )
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no folder, file or journal
    if existing is not None:
        assert path.read_bytes() == existing


def _registry(tmp_path: Path, classes: dict[str, str]) -> str:
    import asyncio

    from zsl.records import ClassDefinition
    from zsl.store import open_store

    url = f"sqlite:///{tmp_path}/registry.sqlite3"

    async def fill() -> None:
        store = await open_store(url)
        try:
            for name, description in classes.items():
                await store.insert_class(7, ClassDefinition(name, description), max_classes=100)
        finally:
            await store.close()

    asyncio.run(fill())
    return url


@pytest.mark.parametrize("classes", [{}, {"qxzvvb": "wqqxjk"}], ids=["none", "dormant"])
def test_a_guild_without_usable_classes_is_told_in_command_line_words(
    glove: WordVectors, tmp_path: Path, classes: dict[str, str]
) -> None:
    url = _registry(tmp_path, classes)

    result = _zsl("classify", "--store", url, "--guild", "7", "one text", "another text")

    assert result.returncode == 2
    assert result.stdout == ""  # said once for the command, not once per text
    assert result.stderr.splitlines()[-1] == (  # after the log line naming a dormant class
        "zsl: The registry has no classes for guild 7 that this model can use. Add some with the "
        "bot's /addclass (or, if they were described for another model, pass that one with "
        "--model), or use --classes FILE."
    )


def test_class_file_mistakes_are_told_in_command_line_words(
    glove: WordVectors, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.tsv"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    twice = tmp_path / "twice.tsv"
    twice.write_text("sports\tfootball\nSports\tgoal\n", encoding="utf-8")

    no_classes = _zsl("classify", "--classes", str(empty), "What a goal!")
    duplicate = _zsl("classify", "--classes", str(twice), "What a goal!")

    assert (no_classes.returncode, duplicate.returncode) == (2, 2)
    assert no_classes.stderr == (
        f"zsl: There are no classes in the class file {empty}. Write one per line as "
        'name<TAB>description, or as JSON {"name": "description"}.\n'
    )
    assert duplicate.stderr == (
        f"zsl: The class 'Sports' appears twice in the class file {twice} (case and spacing do "
        "not count). Rename or remove one of them.\n"
    )


@pytest.mark.parametrize("suffix", [".json", ".tsv"])
def test_class_files_with_a_byte_order_mark_are_read(
    glove: WordVectors, tmp_path: Path, suffix: str
) -> None:
    if suffix == ".json":
        content = json.dumps(CLASSES)
    else:
        content = "# my classes\n" + "".join(f"{n}\t{d}\n" for n, d in CLASSES.items())
    path = tmp_path / f"classes{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + content.encode("utf-8"))  # as Notepad saves UTF-8

    result = _zsl("classify", "--classes", str(path), "--json", "--top", "3", "What a goal!")

    assert result.returncode == 0, result.stderr
    names = [p["name"] for p in json.loads(result.stdout)["predictions"]]
    assert names == ["sports", "music"]  # the comment line is not a class "\ufeff# my classes"
    assert read_class_file(path) == list(CLASSES.items())


def test_classify_reads_the_bots_export_with_its_examples_and_threshold(
    glove: WordVectors, tmp_path: Path
) -> None:
    export = {
        "threshold": 0.99,
        "classes": [
            {"name": "sports", "description": "football", "emoji": "\u26bd", "examples": []},
            {"name": "music", "description": "song album", "emoji": None, "examples": []},
        ],
    }
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"classes": [{"name": "a", "emoji": "x"}]}), encoding="utf-8")

    result = _zsl("classify", "--classes", str(path), "--json", "What a goal in the match!")
    refused = _zsl("classify", "--classes", str(broken), "What a goal!")

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["predictions"][0]["name"] == "sports"
    assert answer["abstained"] is True  # the file's threshold of 99% was kept
    assert refused.returncode == 2
    assert refused.stderr.startswith("zsl: Class 1 of the file ('a'): 'x' is not one emoji.")
