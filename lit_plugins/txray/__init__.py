"""TX-Ray neuron-shift analysis (Rethmeier, Saxena & Augenstein, UAI 2020).

LIT-free core: aggregate per-neuron activation mass over discrete input
features, compare two models neuron by neuron (Hellinger distance / length,
length shift, mass activation) and write an overview report.

    from lit_plugins.txray import FeatureVocab, NeuronFeatureAggregator, compute_shift, write_report

    vocab = FeatureVocab()                      # shared by both models
    agg_a = NeuronFeatureAggregator(hidden_size, mode="max1")
    agg_b = NeuronFeatureAggregator(hidden_size, mode="max1")
    for acts_a, acts_b, tokens in batches:      # acts: [T, H], tokens: [T] strings
        ids = vocab.encode(tokens)
        agg_a.update(acts_a, ids); agg_b.update(acts_b, ids)
    result = compute_shift(agg_a, agg_b, feature_names=vocab)
    result.rank_shifts(k=10)

With ``NeuronFeatureAggregator(..., record_units=True)`` and
``update(acts, ids, units=sentence_index_per_token)``,
``compute_shift(..., replicates=200, seed=0)`` adds a bootstrap over
sentences: per-neuron intervals and a ranking by the lower bound
(:mod:`lit_plugins.txray.bootstrap`).
    write_report(result, "out/txray")

See :mod:`lit_plugins.txray.shift` for the exact definitions and how they
differ from the paper and from the original code.
"""

from lit_plugins.txray import bootstrap
from lit_plugins.txray.aggregate import (
    MODES,
    FeatureScore,
    NeuronDistributions,
    NeuronFeatureAggregator,
)
from lit_plugins.txray.features import FeatureVocab, merge_subwords
from lit_plugins.txray.options import TXRaySettings
from lit_plugins.txray.report import load_pair, write_report
from lit_plugins.txray.shift import WEIGHTINGS, compute_shift, hellinger, hellinger_rows
from lit_plugins.txray.shift_result import NeuronShift, RankedShifts, ShiftResult, rank_shifts
from lit_plugins.txray.synthetic import SyntheticTXRay

__all__ = [
    "MODES",
    "WEIGHTINGS",
    "FeatureScore",
    "FeatureVocab",
    "NeuronDistributions",
    "NeuronFeatureAggregator",
    "NeuronShift",
    "RankedShifts",
    "ShiftResult",
    "SyntheticTXRay",
    "TXRaySettings",
    "bootstrap",
    "compute_shift",
    "hellinger",
    "hellinger_rows",
    "load_pair",
    "merge_subwords",
    "rank_shifts",
    "write_report",
]
