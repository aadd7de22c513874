"""Human rationales from a data column, in the one form the Trust Checks interpreter reads.

A rationale marks the evidence words of an example's first text field (its
whitespace words, as everywhere in lit-plugins). A column may give it as

* evidence words: a string ("absolutely right") or a list of words; every
  occurrence of such a word in the text is evidence;
* word indices: a list of 0-based positions into the whitespace words ([4, 5]);
  in a CSV/TSV cell as a JSON list ("[4, 5]");
* a 0/1 mask with one value per word: a list ([0, 0, 0, 0, 1, 1]) or a string
  ("0 0 0 0 1 1"); a list of 0s and 1s with one value per word, or with a value
  repeated, is a mask, any other list of integers is indices.

`stored_form` turns any of them into a string, so the dataset field has one LIT
type (`lit_types.String`: shown in LIT's data table, left alone by the
generators, which edit `TextSegment` fields):

* evidence words stay words, space separated ("absolutely right");
* indices and masks keep their positions: the text's words with every unmarked
  word written as ``_`` ("_ _ _ _ absolutely right."), so a repeated word marked
  once stays marked once.

`marked_positions` reads the positional form back
(`lit_plugins.lit.alignment.rationale_pieces` calls it); an empty string means no rationale.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence

import numpy as np

UNMARKED = "_"  # an unmarked word in the positional form
ACCEPTED = (
    "accepted: evidence words (text or a list of words that occur in the text), "
    "word indices (a list of 0-based positions into the whitespace words, e.g. [0, 3]; "
    'in a CSV cell "[0, 3]"), or a 0/1 mask with one value per word (a list or a '
    'string such as "0 1 1 0"); empty: no rationale'
)
_PUNCTUATION = re.compile(
    f"^[{re.escape(string.punctuation)}]+|[{re.escape(string.punctuation)}]+$"
)
_MASK_VALUES = {"0", "1"}


def normalize(word: str) -> str:
    """A word as rationales compare it: lower case, punctuation at its ends removed
    (the interpreter's rule: "Right." is "right")."""
    return _PUNCTUATION.sub("", word.lower())


def marked_positions(value: str, words: Sequence[str]) -> list[int] | None:
    """The word positions a positional-form string marks ("_ bold _" -> [1]);
    None when `value` is not that form: it has one entry per word of `words`, at
    least one ``_``, and every other entry is the word at its position."""
    entries = value.split()
    if len(entries) != len(words) or UNMARKED not in entries:
        return None
    if any(e != UNMARKED and normalize(e) != normalize(w) for e, w in zip(entries, words)):
        return None
    return [i for i, e in enumerate(entries) if e != UNMARKED]


def positional_form(words: Sequence[str], positions) -> str:
    """The text's words with every word outside `positions` written as ``_``."""
    chosen = set(positions)
    return " ".join(w if i in chosen else UNMARKED for i, w in enumerate(words))


def word_positions(stored: str, text: str) -> list[int]:
    """The positions a stored rationale marks in `text` (evidence words: every
    occurrence); [] for no rationale."""
    words = text.split()
    positions = marked_positions(stored, words)
    if positions is not None:
        return positions
    wanted = {normalize(w) for w in stored.split()} - {""}
    return [i for i, w in enumerate(words) if normalize(w) in wanted]


def stored_form(value, text: str, *, row: int, column: str, text_field: str) -> str:
    """One cell of a rationale column as the stored string ('' when the cell is
    empty or missing). Raises ValueError naming the row, the column and what is
    accepted when the value is none of the accepted forms, names an index outside
    the text, is a mask of the wrong length, or names a word the text lacks."""
    words = text.split()

    def fail(problem: str) -> ValueError:
        return ValueError(
            f"Row {row}, rationale column {column!r}: {problem} ({len(words)} words in "
            f"{text_field!r}); {ACCEPTED}."
        )

    value = _as_list_or_str(value)
    if isinstance(value, str):
        positions = marked_positions(value, words)
        if positions is not None:  # already the stored form
            return positional_form(words, positions)
        value = value.split()
        if not value:
            return ""
        if not set(value) <= _MASK_VALUES or not _is_mask_shaped(value, len(words)):
            return _evidence_words(value, words, fail)
    if not isinstance(value, list):
        raise fail(f"{value!r} is neither words, word indices nor a 0/1 mask")
    if not value:
        return ""
    if all(isinstance(v, (bool, np.bool_)) for v in value):
        return _mask(value, words, fail)
    if all(_is_int(v) for v in value):
        if {int(v) for v in value} <= {0, 1} and _is_mask_shaped(value, len(words)):
            return _mask(value, words, fail)
        bad = sorted({int(v) for v in value if not 0 <= int(v) < len(words)})
        if bad:
            raise fail(f"word indices {bad} are outside the text")
        return positional_form(words, {int(v) for v in value})
    if all(isinstance(v, str) for v in value):
        if set(value) <= _MASK_VALUES and _is_mask_shaped(value, len(words)):
            return _mask(value, words, fail)
        return _evidence_words([p for v in value for p in v.split()], words, fail)
    raise fail(f"{value!r} is neither words, word indices nor a 0/1 mask")


def _as_list_or_str(value):
    """A cell as a list, a string or None: missing/NaN -> '', a JSON list in a
    string -> the list, a lone number (a CSV cell pandas read as one) -> its text."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                return value  # "[sic]"-like text: evidence words
            if isinstance(parsed, list):
                return parsed
        return value
    if _is_int(value) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    return value


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_mask_shaped(values: Sequence, num_words: int) -> bool:
    """0/1 values are a mask when there is one per word or a value repeats (a
    list of indices names each word once); else they are indices or words."""
    return len(values) == num_words or len({str(int(v)) for v in values}) < len(values)


def _mask(values: Sequence, words: Sequence[str], fail) -> str:
    if len(values) != len(words):
        raise fail(f"a 0/1 mask needs one value per word, got {len(values)} values")
    positions = [i for i, v in enumerate(values) if int(v) == 1]
    return positional_form(words, positions) if positions else ""


def _evidence_words(entries: Sequence[str], words: Sequence[str], fail) -> str:
    kept = [e for e in entries if normalize(e)]  # lone punctuation is no evidence
    if not kept:
        raise fail(f"{' '.join(entries)!r} holds no word")
    present = {normalize(w) for w in words}
    missing = [e for e in kept if normalize(e) not in present]
    if missing:
        raise fail(f"evidence words {missing} do not occur in the text")
    return " ".join(kept)
