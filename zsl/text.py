"""Discord-aware tokenizer: chat markup in, plain words out (original casing kept)."""

from __future__ import annotations

import logging
import re
import unicodedata

log = logging.getLogger(__name__)

# Order matters: code is removed before anything inside it can look like a URL or a mention.
_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Custom emoji keep their name: <:party_parrot:123> says "party parrot".
_CUSTOM_EMOJI = re.compile(r"<a?:([A-Za-z0-9_]{1,32}):\d+>")
# User, role, channel and slash-command mentions, and timestamps carry no words.
_MENTION = re.compile(r"<(?:@[!&]?|#|/[^:<>]{1,100}:|t:)[^<>\s]{0,40}>")
_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
# What every pattern above needs to find anything (a backquote, "<", "://" or "www."): a text
# without any goes straight to the words, one scan instead of five substitutions.
_MARKUP = re.compile(r"[`<]|://|www\.", re.IGNORECASE)


def _strip_format_characters(text: str) -> str:
    # Zero-width joiners, direction marks and the like would otherwise split or hide words;
    # lone surrogates cannot even be encoded.
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cs", "Co"))


def tokenize(text: str) -> list[str]:
    """Split a chat message into words, leaving out code, links, mentions and markdown."""
    if text.isascii():
        # The usual message or class definition, words and spaces: nothing to remove, and the
        # words are the pieces between the spaces when those are all ASCII letters and digits.
        words = text.split()
        if "".join(words).isalnum():
            return words
    else:  # Unicode clean-up, which ASCII needs none of
        # The apostrophes are one in _WORD too, so they can be unified before the words split.
        text = _strip_format_characters(unicodedata.normalize("NFKC", text))
        text = text.replace("\u2019", "'")
    if _MARKUP.search(text):
        text = _CODE_BLOCK.sub(" ", text)
        text = _INLINE_CODE.sub(" ", text)
        text = _URL.sub(" ", text)
        text = _CUSTOM_EMOJI.sub(lambda m: " " + m.group(1).replace("_", " ") + " ", text)
        text = _MENTION.sub(" ", text)
    found: list[str] = _WORD.findall(text)
    return found
