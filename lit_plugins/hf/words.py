"""Words of a tagged text: choosing a target word, and BIO entities as character spans.

Used by `hf.token_classifier` (predictions, salience targets) and `data.conll` (gold
entities). No `lit_nlp`, no `transformers`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from lit_plugins.util import bio


def parse_word(word, words: Sequence[str]) -> int:
    """A word index from an index (int or digits) or the word itself (first match)."""
    if isinstance(word, (int, np.integer)) or (isinstance(word, str) and word.strip().isdigit()):
        index = int(word)
        if not 0 <= index < len(words):
            raise ValueError(
                f"Word index {index} is out of range: the text has {len(words)} words "
                f"(0 to {len(words) - 1})."
            )
        return index
    if isinstance(word, str) and word.strip() in words:
        return words.index(word.strip())
    raise ValueError(
        f"Target word {word!r} is neither a word index nor one of the words {list(words)[:20]}."
    )


def entity_spans(text: str, tags: Sequence[str], scores=None) -> list[dict[str, Any]]:
    """BIO entities as {label, start, end (character offsets in `text`), words, score
    (mean of the words' scores)}; none when the tags are not BIO."""
    if not bio.is_bio(tags):
        return []
    offsets = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    found = []
    for a, b, kind in bio.spans(tags):
        score = None if scores is None else float(np.mean(scores[a:b]))
        found.append(
            {
                "label": kind,
                "start": offsets[a][0],
                "end": offsets[b - 1][1],
                "words": (a, b),
                "score": score,
            }
        )
    return found
