"""BIO tag sequences: entity spans and the tagging metrics (token accuracy, span F1).

Spans follow the CoNLL evaluation script (conlleval): a chunk starts at a ``B-`` tag,
at an ``I-`` tag after ``O`` or after a tag of another type, and ends before ``O``,
before a ``B-`` and before a change of type. Tags that are neither ``O`` nor
``B-``/``I-`` prefixed (POS tags, say) are not BIO: the span metrics are then left out.
"""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[int, int, str]  # (first word, one past the last word, entity type)

OUTSIDE = "O"
_PREFIXES = ("B-", "I-")


def is_bio(tags: Sequence[str]) -> bool:
    """Whether every tag is 'O' or B-/I- prefixed (an entity scheme)."""
    return all(t == OUTSIDE or (t[:2] in _PREFIXES and len(t) > 2) for t in tags)


def _split(tag: str) -> tuple[str, str]:
    if tag == OUTSIDE or tag[:2] not in _PREFIXES:
        return OUTSIDE, ""
    return tag[0], tag[2:]


def spans(tags: Sequence[str]) -> list[Span]:
    """The entity chunks of one tag sequence, conlleval's way."""
    found: list[Span] = []
    start, kind = None, ""
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, typ = _split(tag)
        ends = start is not None and (prefix in (OUTSIDE, "B") or typ != kind)
        if ends:
            found.append((start, i, kind))
            start = None
        if prefix in ("B", "I") and start is None:
            start, kind = i, typ
    return found


def tag_metrics(golds: Sequence[Sequence[str]], preds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Token accuracy over all words and, for BIO tags, micro span precision, recall
    and F1 (exact (start, end, type) matches). Sequences must pair up in length."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold sequences but {len(preds)} predicted.")
    correct = total = 0
    for i, (g, p) in enumerate(zip(golds, preds)):
        if len(g) != len(p):
            raise ValueError(f"Example {i}: {len(g)} gold tags but {len(p)} predicted.")
        correct += sum(a == b for a, b in zip(g, p))
        total += len(g)
    result = {"token_accuracy": correct / total if total else float("nan")}
    if not all(is_bio(g) and is_bio(p) for g, p in zip(golds, preds)):
        return result
    hit = n_gold = n_pred = 0
    for g, p in zip(golds, preds):
        gs, ps = set(spans(g)), set(spans(p))
        hit += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    precision = hit / n_pred if n_pred else float("nan")
    recall = hit / n_gold if n_gold else float("nan")
    f1 = 2 * hit / (n_gold + n_pred) if n_gold + n_pred else float("nan")
    result.update(span_precision=precision, span_recall=recall, span_f1=f1)
    return result
