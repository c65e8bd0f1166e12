"""word2vec training on your own text (``zsl train``), saved in gensim's native format."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zsl.errors import ModelError
from zsl.vectors.format import WordVectors
from zsl.vectors.sources import ProgressFactory, open_native, save_native

log = logging.getLogger(__name__)

# The most dimensions a model we write may have: the largest common embedding size. A typo
# like 10000000 would otherwise exhaust memory before anything says so.
MAX_DIM = 1024

# What train_word2vec accepts: (lowest, highest or None). ``zsl train`` checks its options
# against the same table, so gensim never sees a value it would hang or crash on.
TRAINING_RANGES: Mapping[str, tuple[int, int | None]] = {
    "dim": (1, MAX_DIM),
    "window": (1, None),
    "min_count": (1, None),
    "epochs": (1, None),
    "workers": (1, None),
    "seed": (0, 2**32 - 1),  # numpy's seed range
}


def train_word2vec(
    corpus: Path,
    target: Path,
    *,
    dim: int = 100,
    window: int = 5,
    min_count: int = 5,
    epochs: int = 5,
    workers: int = 2,
    seed: int = 1,
    progress: ProgressFactory | None = None,
) -> WordVectors:
    """Train word2vec on ``corpus`` (one document per line) and save it natively at ``target``.

    Words are tokenized like chat text and lowercased; real word counts are kept, so frequency
    weighting uses them.

    Raises:
        ModelError: an option is out of range (see ``TRAINING_RANGES``), the corpus cannot be
            read or has no word frequent enough, or training failed.
    """
    options = {
        "dim": dim,
        "window": window,
        "min_count": min_count,
        "epochs": epochs,
        "workers": workers,
        "seed": seed,
    }
    for option, value in options.items():
        low, high = TRAINING_RANGES[option]
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise ModelError(f"The {option} must be {allowed}, not {value}.")

    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    from zsl.text import tokenize

    try:
        with corpus.open(encoding="utf-8-sig", errors="replace") as fh:
            sentences = [[w.lower() for w in tokenize(line)] for line in fh]
    except OSError as exc:
        raise ModelError(f"Cannot read the corpus {corpus} ({exc.strerror}).") from exc
    sentences = [s for s in sentences if s]

    class _EpochBar(CallbackAny2Vec):  # type: ignore[misc]  # gensim is untyped
        def __init__(self) -> None:
            self.bar = progress(total=epochs, desc="training", unit="epoch") if progress else None

        def on_epoch_end(self, model: Any) -> None:
            if self.bar is not None:
                self.bar.update(1)

    class _GuardedWord2Vec(Word2Vec):  # type: ignore[misc]  # gensim is untyped
        # gensim waits until every worker thread reports "done"; a worker that raises never
        # does, and the caller waits for ever. Here a failing worker keeps the failure, takes
        # the rest of its jobs without training (so the job producer never blocks) and reports
        # done; the failure is raised in the caller once training returns.
        failure: BaseException | None = None

        def _worker_loop(self, job_queue: Any, progress_queue: Any) -> None:
            try:
                super()._worker_loop(job_queue, progress_queue)
            except Exception as exc:
                self.failure = self.failure or exc
                while job_queue.get() is not None:
                    pass
                progress_queue.put(None)

    bar = _EpochBar()
    model = _GuardedWord2Vec(
        vector_size=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        workers=workers,
        seed=seed,
    )
    try:
        model.build_vocab(sentences)
        if not len(model.wv):
            raise ModelError(
                f"The corpus {corpus} has no word that occurs {min_count} times or more. Use a "
                "larger corpus or a smaller --min-count."
            )
        model.train(sentences, total_examples=model.corpus_count, epochs=epochs, callbacks=[bar])
        if model.failure is not None:
            raise model.failure
    except ModelError:
        raise
    except Exception as exc:
        log.debug("word2vec training failed", exc_info=True)
        raise ModelError(
            f"Training on {corpus} failed ({type(exc).__name__}: {exc}). Check the training "
            "options; if they look right, report this with the command you ran."
        ) from exc
    finally:
        if bar.bar is not None:
            bar.bar.close()
    try:
        save_native(model.wv, target)
    except OSError as exc:
        raise ModelError(f"Could not write {target} ({exc.strerror}).") from exc
    return open_native(target, name=target.name)
