"""Linear probing of neuron activations (LIT-free math).

Dalvi et al. (AAAI 2019) neuron probing with NeuroX-compatible neuron
selection, Hewitt & Liang (2019) control tasks, ablation and per-layer
sweeps.  Nothing here imports lit_nlp; the LIT glue lives elsewhere.
"""

from lit_plugins.probing import options
from lit_plugins.probing.ablation import filter_activations, random_neurons, top_vs_random_ablation
from lit_plugins.probing.control import (
    apply_control_mapping,
    control_label_mapping,
    control_task_selectivity,
    make_control_labels,
    selectivity,
)
from lit_plugins.probing.metrics import (
    METRICS,
    accuracy,
    accuracy_and_f1,
    compute_score,
    evaluate_probe,
    f1,
    f1_per_class,
    matthews_corrcoef,
    pearson,
    pearson_and_spearman,
    spearman,
)
from lit_plugins.probing.neurons import (
    get_bottom_neurons,
    get_fixed_number_of_bottom_neurons,
    get_neuron_ordering,
    get_neuron_ordering_granular,
    get_random_neurons,
    get_top_neurons,
    get_top_neurons_hard_threshold,
)
from lit_plugins.probing.options import ProbeSettings
from lit_plugins.probing.probes import (
    LinearProbe,
    train_linear_regression_probe,
    train_logistic_regression_probe,
)
from lit_plugins.probing.representations import (
    STRATEGIES,
    LayerSweep,
    map_word_labels_to_subwords,
    pool_sentence,
    token_dataset,
    word_level_activations,
)
from lit_plugins.probing.splits import train_held_out_split

__all__ = [
    "METRICS",
    "STRATEGIES",
    "LayerSweep",
    "LinearProbe",
    "ProbeSettings",
    "accuracy",
    "accuracy_and_f1",
    "apply_control_mapping",
    "compute_score",
    "control_label_mapping",
    "control_task_selectivity",
    "evaluate_probe",
    "f1",
    "f1_per_class",
    "filter_activations",
    "get_bottom_neurons",
    "get_fixed_number_of_bottom_neurons",
    "get_neuron_ordering",
    "get_neuron_ordering_granular",
    "get_random_neurons",
    "get_top_neurons",
    "get_top_neurons_hard_threshold",
    "make_control_labels",
    "map_word_labels_to_subwords",
    "matthews_corrcoef",
    "options",
    "pearson",
    "pearson_and_spearman",
    "pool_sentence",
    "random_neurons",
    "selectivity",
    "spearman",
    "token_dataset",
    "top_vs_random_ablation",
    "train_held_out_split",
    "train_linear_regression_probe",
    "train_logistic_regression_probe",
    "word_level_activations",
]
