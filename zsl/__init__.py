"""Zero-shot text classification with word vectors, for Discord servers and the command line.

```python
from zsl import load_vectors, ZeroShotService

vectors = load_vectors()
service = await ZeroShotService.open(vectors, "sqlite:///data/zsl.sqlite3")
await service.add_class(guild_id, "sports", description="football match team goal")
result = await service.classify(guild_id, "What a goal in the last minute!")
```
"""

from zsl.classes import ClassSet, Limits
from zsl.classifier import DEFAULT_THRESHOLD, Classification, Prediction, ScoringConfig
from zsl.embedding import Encoder, EncoderConfig
from zsl.errors import (
    ClassFileError,
    ClassLimitError,
    ClassNotFoundError,
    ConfusableClassError,
    DuplicateClassError,
    ExampleLimitError,
    ExampleNotFoundError,
    GuildNotServedError,
    InvalidClassError,
    InvalidEmojiError,
    InvalidTextError,
    InvalidThresholdError,
    ModelError,
    NoClassesError,
    StoreError,
    StoreUnavailableError,
    UnknownWordsError,
    VoteNotFoundError,
    ZslError,
    shown_input,
)
from zsl.records import (
    WATCH_ACTIONS,
    Autotag,
    ClassDefinition,
    ClassSetFile,
    Vote,
    Watch,
    check_emoji,
    dump_class_set,
    parse_class_set,
)
from zsl.service import (
    DEFAULT_CALIBRATION_CACHE_BYTES,
    DEFAULT_GUILD_CACHE_BYTES,
    CacheInfo,
    ZeroShotService,
    configure_process,
)
from zsl.text import tokenize
from zsl.vectors import DEFAULT_MODEL, GLOVE_MODEL, WordVectors, load_vectors

__all__ = [
    "DEFAULT_CALIBRATION_CACHE_BYTES",
    "DEFAULT_GUILD_CACHE_BYTES",
    "DEFAULT_MODEL",
    "DEFAULT_THRESHOLD",
    "GLOVE_MODEL",
    "WATCH_ACTIONS",
    "Autotag",
    "CacheInfo",
    "ClassDefinition",
    "ClassFileError",
    "ClassLimitError",
    "ClassNotFoundError",
    "ClassSet",
    "ClassSetFile",
    "Classification",
    "ConfusableClassError",
    "DuplicateClassError",
    "Encoder",
    "EncoderConfig",
    "ExampleLimitError",
    "ExampleNotFoundError",
    "GuildNotServedError",
    "InvalidClassError",
    "InvalidEmojiError",
    "InvalidTextError",
    "InvalidThresholdError",
    "Limits",
    "ModelError",
    "NoClassesError",
    "Prediction",
    "ScoringConfig",
    "StoreError",
    "StoreUnavailableError",
    "UnknownWordsError",
    "Vote",
    "VoteNotFoundError",
    "Watch",
    "WordVectors",
    "ZeroShotService",
    "ZslError",
    "check_emoji",
    "configure_process",
    "dump_class_set",
    "load_vectors",
    "parse_class_set",
    "shown_input",
    "tokenize",
]
