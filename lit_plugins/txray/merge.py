"""Sum TX-Ray aggregations of disjoint parts of a corpus into the whole corpus's.

An aggregation is a sum over token positions (mass and count per neuron and
feature), so the aggregation of a corpus is the sum of its parts'.  Each part
has its own feature ids (its own `FeatureVocab`); `merge` maps them onto one
union vocabulary built in part order, which is the vocabulary one pass over
the parts in that order would have built: the merged aggregation has the same
feature ids as a single pass, and equal cells up to the summation order.

Parts that record units (the bootstrap's per-sentence table, with
corpus-wide sentence ids) merge those too: the merged table is the one a
single pass records (`bootstrap.UnitCells.absorb`), so the bootstrap's
intervals are the single pass's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lit_plugins.txray.aggregate import NeuronFeatureAggregator
from lit_plugins.txray.bootstrap import UnitCells
from lit_plugins.txray.features import FeatureVocab


def merge(
    parts: Iterable[tuple[NeuronFeatureAggregator, Sequence[str]]],
) -> tuple[NeuronFeatureAggregator, FeatureVocab]:
    """(summed aggregation, union vocab) of `parts`, each (aggregation, its feature names).

    Streams: one part's cells plus the running sum are in memory at a time.
    All parts must have the same neuron count and mode, and all or none
    must record units.
    """
    vocab = FeatureVocab()
    merged: NeuronFeatureAggregator | None = None
    units: UnitCells | None = None
    for i, (agg, names) in enumerate(parts):
        if merged is not None and (agg.num_neurons, agg.mode) != (merged.num_neurons, merged.mode):
            raise ValueError(
                f"Part {i} has {agg.num_neurons} neurons in mode {agg.mode!r}; the first part "
                f"has {merged.num_neurons} in mode {merged.mode!r}: only aggregations of the same "
                "layer and mode can be merged."
            )
        names = list(names)
        if len(names) < agg.num_features:
            raise ValueError(
                f"Part {i}: {len(names)} feature names for {agg.num_features} features."
            )
        if (agg.units is None) != (units is None) and merged is not None:
            raise ValueError(
                f"Part {i} {'lacks' if agg.units is None else 'has'} the bootstrap's "
                f"per-sentence table and the first part {'has it' if agg.units is None else 'not'}"
                ": merge parts recorded alike (all with record_units=True, or none)."
            )
        ids = np.asarray([vocab.add(str(n)) for n in names], dtype=np.int64)
        if agg.units is not None:
            units = agg.units.renumbered(ids) if units is None else units.absorb(agg.units, ids)
        cells = list(agg.to_coo())
        cells[1] = ids[cells[1]]
        tokens, credited = agg.num_tokens, agg.num_credited
        if merged is not None:
            # The running sum and this part: from_coo adds repeated cells.
            cells = [np.concatenate([a, b]) for a, b in zip(merged.to_coo(), cells)]
            tokens += merged.num_tokens
            credited += merged.num_credited
        merged = NeuronFeatureAggregator.from_coo(
            agg.num_neurons,
            len(vocab),
            *cells,
            mode=agg.mode,
            num_tokens=tokens,
            num_credited=credited,
        )
    if merged is None:
        raise ValueError("Nothing to merge: no parts were given.")
    merged.units = units
    return merged, vocab
