"""Tokens and words: the one home for aligning a model's word pieces to text.

Every interpreter that speaks about *words* (token-level probes, TX-Ray's word
and tag features) or about *special tokens* (gradient maps' normalisation, IG's
baselines) asks this module, so the answer is the same everywhere:

* `text_field`: the model input field its `Tokens` (hence the words) come from.
* `special_token_mask`: [CLS], [SEP], <s>, ... by the tokenizer's list and by
  shape, for models whose tokenizer we cannot see.
* `word_piece_weights`: whitespace words of an example ↔ the model's pieces,
  from the fast tokenizer's character offsets, as the piece-weight matrix that
  `probing.word_level_activations` applies (first / last / mean piece).
* `word_convention`: how the tokenizer marks word boundaries (``##`` or a
  word-start marker), for `txray.merge_subwords`.
* `tags_per_token`: the tag of the word each piece belongs to.
* `rationale_pieces`: a human rationale (evidence words or word positions) as
  a mask over the pieces.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.data import rationales
from lit_plugins.lit import specs
from lit_plugins.probing import representations

JsonDict = specs.JsonDict

_SPECIAL_RE = re.compile(r"^(\[[A-Z]+\]|<[^<>\s]+>)$")
# Word-start markers of SentencePiece (▁) and byte-level BPE (Ġ) vocabularies.
_WORD_START_MARKERS = ("\u2581", "\u0120")


def tokenizer_of(model: lit_model.Model) -> Any:
    """The HF tokenizer of the model under LIT's wrappers, or None."""
    return getattr(specs.unwrap(model), "tokenizer", None)


def has_fast_tokenizer(model: lit_model.Model) -> bool:
    """Character offsets (needed for word alignment) come from fast tokenizers."""
    return bool(getattr(tokenizer_of(model), "is_fast", False))


def text_field(model: lit_model.Model) -> str | None:
    """The model input field its Tokens (hence the words) come from.

    The `parent` of the Tokens field the per-layer activations are aligned to,
    else the first `TextSegment` input; None when the model has no text input.
    """
    raw = specs.unwrap(model)
    out_spec = raw.output_spec()
    layers = specs.find_layer_activation_fields(out_spec)
    if layers:
        try:
            tokens = specs.find_tokens_field(out_spec, next(iter(layers.values())))
        except ValueError:
            tokens = None
        parent = getattr(out_spec.get(tokens), "parent", None) if tokens else None
        if parent:
            return parent
    texts = [k for k, v in raw.input_spec().items() if isinstance(v, lit_types.TextSegment)]
    return texts[0] if texts else None


def special_token_mask(model: lit_model.Model, tokens: Sequence[str]) -> np.ndarray:
    """True for special tokens ([CLS], [SEP], <s>, ...)."""
    special = set(getattr(tokenizer_of(model), "all_special_tokens", []) or [])
    return np.array([t in special or bool(_SPECIAL_RE.match(t)) for t in tokens], dtype=bool)


def word_piece_weights(
    model: lit_model.Model,
    example: JsonDict,
    field: str,
    tokens: Sequence[str],
    pooling: str,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Maps the model's tokens to the whitespace words of `field`.

    Returns (words, A [num_kept_words, T] piece weights as in
    `probing.word_level_activations`, kept word indices). Uses the model's fast
    tokenizer's character offsets; the tokens must be the ones the model
    returned (checked). Words cut off by truncation are not kept.
    """
    raw = specs.unwrap(model)
    tok = raw.tokenizer
    text = example.get(field)
    if not isinstance(text, str):
        raise ValueError(
            f"Word alignment needs the text field {field!r} as a string in every example."
        )
    if not text.strip():
        text = ""
    words = text.split()
    texts = [text]
    fields = getattr(raw, "text_fields", (field,))
    if len(fields) == 2:
        other = example.get(fields[1] if fields[0] == field else fields[0])
        texts.append(other if isinstance(other, str) and other.strip() else "")
    # The tokenizer's truncation settings are shared state: hold the model's
    # lock where it has one (HFSequenceClassifier.inference_lock).
    with getattr(raw, "inference_lock", None) or contextlib.nullcontext():
        enc = tok(
            *texts,
            truncation=True,
            max_length=getattr(raw, "max_length", None),
            return_offsets_mapping=True,
        )
    ids = enc["input_ids"]
    if [str(t) for t in tok.convert_ids_to_tokens(ids)] != [str(t) for t in tokens]:
        raise ValueError(
            "Could not align the model's tokens with its tokenizer's character offsets "
            "for word-level features."
        )
    char_word = np.full(len(text), -1, dtype=np.int64)
    pos = 0
    for w, word in enumerate(words):
        start = text.index(word, pos)
        char_word[start : start + len(word)] = w
        pos = start + len(word)
    want_seq = 0 if fields[0] == field or len(fields) == 1 else 1
    word_ids = []
    for (start, end), sid in zip(enc["offset_mapping"], enc.sequence_ids(0)):
        wid = None
        if sid == want_seq and end > start:
            hits = char_word[start:end]
            hits = hits[hits >= 0]
            if hits.size:
                wid = int(hits[0])
        word_ids.append(wid)
    # The core's matrix is what word_level_activations applies: the two never
    # disagree.
    weights, kept = representations.piece_weights(word_ids, len(words), pooling)
    return words, weights, kept


def tags_per_token(
    model: lit_model.Model, example: JsonDict, tokens: Sequence[str], tags_field: str
) -> list[str | None]:
    """Each token's tag: that of the whitespace word it belongs to in the
    model's text field (None for special tokens and truncated words)."""
    field = text_field(model)
    tags = example.get(tags_field)
    words = str(example.get(field) or "").split()
    if not isinstance(tags, (list, tuple)) or len(tags) != len(words):
        raise ValueError(
            f"{tags_field!r} must hold one tag per whitespace word of {field!r} "
            f"({len(words)} words), got {tags!r}."
        )
    _, weights, kept = word_piece_weights(model, example, field, tokens, "mean")
    out: list[str | None] = [None] * len(tokens)
    for row, word in enumerate(kept):
        for t in np.flatnonzero(weights[row]):
            out[t] = str(tags[int(word)])
    return out


def word_convention(model: lit_model.Model) -> dict[str, Any]:
    """`txray.merge_subwords` arguments for the model's tokenizer."""
    tokenizer = tokenizer_of(model)
    special = list(getattr(tokenizer, "all_special_tokens", []) or [])
    backend = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    if type(backend).__name__ == "WordPiece":
        prefix = getattr(backend, "continuing_subword_prefix", None) or "##"
        return dict(continuation_prefix=prefix, special_tokens=special)
    vocab = {}
    if tokenizer is not None and hasattr(tokenizer, "get_vocab"):
        try:
            vocab = tokenizer.get_vocab()
        except Exception:  # a tokenizer without a readable vocab: use the default
            vocab = {}
    starts = {m: sum(1 for t in vocab if t.startswith(m)) for m in _WORD_START_MARKERS}
    marker = max(starts, key=starts.get)
    if starts[marker] > 0:
        return dict(continuation_prefix=None, word_start_prefix=marker, special_tokens=special)
    return dict(continuation_prefix="##", special_tokens=special)


def rationale_pieces(model, example: JsonDict, field: str, tokens, value) -> np.ndarray | None:
    """A human rationale as a boolean mask over `tokens` (None when there is none).

    `value` names words of the example's `field`: evidence words (a string or a
    list of words; every occurrence counts, compared by `data.rationales.normalize`),
    word indices, or a loaded rationale column's positional form ("_ _ bold _":
    word positions, `data.rationales`). A piece is marked when it belongs to a
    marked word. Indices outside the text, or evidence words none of which
    occur in it, raise ValueError."""
    if value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0):
        return None
    text = example.get(field)
    words = text.split() if isinstance(text, str) else []
    if isinstance(value, str):
        positions = rationales.marked_positions(value, words)
        if positions == []:  # every word "_": nothing marked
            return None
        value = value.split() if positions is None else positions
    values = list(value)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        bad = [int(v) for v in values if not 0 <= int(v) < len(words)]
        if bad:
            raise ValueError(
                f"rationale word indices {bad} are outside the text's {len(words)} words"
            )
        chosen = {int(v) for v in values}
    elif all(isinstance(v, str) for v in values):
        wanted = {rationales.normalize(v) for v in values} - {""}
        chosen = {i for i, w in enumerate(words) if rationales.normalize(w) in wanted}
        if not chosen:
            raise ValueError(f"no rationale word {sorted(wanted)} occurs in the text")
    else:
        raise ValueError("a rationale is evidence words (text or a list) or word indices")
    _, weights, kept = word_piece_weights(model, example, field, tokens, "mean")
    mask = np.zeros(len(tokens), bool)
    for row, w in zip(weights, kept):
        if int(w) in chosen:
            mask |= np.asarray(row) > 0
    return mask
