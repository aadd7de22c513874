"""TX-Ray's input features: a shared feature vocabulary and word merging.

`FeatureVocab` maps feature strings (word pieces, words, tags) to dense ids,
shared by the two models compared so that their aggregations align;
`merge_subwords` turns word pieces into whole-word features.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np


class FeatureVocab:
    """Bidirectional map between feature strings and dense integer ids.

    Share **one** instance between the two models that are compared so that
    feature ids align (or re-map later with :meth:`NeuronFeatureAggregator.remap_features`).

    Args:
      features: optional initial features (ids assigned in order; duplicates
        are ignored).
      unk: optional feature string used for unseen features once the vocab is
        frozen; if ``None`` unseen features raise ``KeyError`` when frozen.
    """

    def __init__(self, features: Iterable[str] = (), unk: str | None = None):
        self._id: dict[str, int] = {}
        self._names: list[str] = []
        self.frozen = False
        self.unk = unk
        if unk is not None:
            self.add(unk)
        for f in features:
            self.add(f)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, feature: str) -> bool:
        return feature in self._id

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __repr__(self) -> str:
        return f"FeatureVocab(size={len(self)}, frozen={self.frozen})"

    @property
    def names(self) -> list[str]:
        """Feature strings indexed by id (a copy)."""
        return list(self._names)

    def freeze(self) -> FeatureVocab:
        self.frozen = True
        return self

    def add(self, feature: str) -> int:
        """Returns the id of ``feature``, adding it unless the vocab is frozen."""
        fid = self._id.get(feature)
        if fid is not None:
            return fid
        if self.frozen:
            if self.unk is not None:
                return self._id[self.unk]
            raise KeyError(f"feature {feature!r} not in frozen FeatureVocab")
        fid = len(self._names)
        self._id[feature] = fid
        self._names.append(str(feature))
        return fid

    def id_of(self, feature: str) -> int:
        """Id of a known feature (``KeyError`` if unknown; never adds)."""
        return self._id[feature]

    def encode(self, features: Iterable[str]) -> np.ndarray:
        """Ids (``int64`` array) for a sequence of feature strings, adding new ones."""
        if not isinstance(features, (list, tuple)):
            features = list(features)
        ids = list(map(self._id.get, features))
        if None in ids:  # slow path only for the unseen features
            add = self.add
            for i in [j for j, x in enumerate(ids) if x is None]:
                ids[i] = add(features[i])
        return np.array(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self._names[int(i)] for i in ids]

    def name(self, fid: int) -> str:
        return self._names[int(fid)]

    def to_list(self) -> list[str]:
        return list(self._names)

    @classmethod
    def from_list(cls, names: Sequence[str]) -> FeatureVocab:
        vocab = cls()
        for n in names:
            if n in vocab._id:
                raise ValueError(f"duplicate feature {n!r} in vocabulary list")
            vocab.add(n)
        return vocab


def merge_subwords(
    tokens: Sequence[str],
    continuation_prefix: str | None = "##",
    word_start_prefix: str | None = None,
    special_tokens: Iterable[str] = (),
) -> list[str]:
    """Maps every sub-word token position to its whole word.

    Returns a list as long as ``tokens``, where each position holds the merged
    word it belongs to, so ``FeatureVocab.encode(merge_subwords(toks))`` gives
    one whole-word feature id per token position (the activations stay per
    position).

    Two conventions are supported:

    * WordPiece (BERT/MiniLM): continuation pieces start with
      ``continuation_prefix`` (default ``"##"``), e.g.
      ``["un", "##believ", "##able"] -> ["unbelievable"] * 3``.
    * SentencePiece/BPE: pass ``continuation_prefix=None`` and
      ``word_start_prefix="\u2581"`` (or ``"\u0120"`` for GPT-2 BPE); a piece that
      does not start with it continues the previous word.

    Tokens in ``special_tokens`` (e.g. ``[CLS]``, ``[SEP]``, ``[PAD]``) are
    kept as their own feature and never merged.
    """
    if (continuation_prefix is None) == (word_start_prefix is None):
        raise ValueError("give exactly one of continuation_prefix or word_start_prefix")
    special = set(special_tokens)
    groups: list[list[int]] = []
    pieces: list[str] = []
    for i, tok in enumerate(tokens):
        tok = str(tok)
        if tok in special:
            groups.append([i])
            pieces.append(tok)
            continue
        if continuation_prefix is not None:
            cont = tok.startswith(continuation_prefix) and len(tok) > len(continuation_prefix)
            text = tok[len(continuation_prefix) :] if cont else tok
        else:
            cont = not tok.startswith(word_start_prefix)
            text = tok if cont else tok[len(word_start_prefix) :]
        prev_special = bool(groups) and str(tokens[groups[-1][-1]]) in special
        if cont and groups and not prev_special:
            groups[-1].append(i)
            pieces[-1] += text
        else:
            groups.append([i])
            pieces.append(text)
    out = [""] * len(tokens)
    for g, word in zip(groups, pieces):
        for i in g:
            out[i] = word
    return out
