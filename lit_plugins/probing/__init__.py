"""Linear probing of neuron activations (LIT-free math).

Dalvi et al. (AAAI 2019) neuron probing with NeuroX-compatible neuron
selection, Hewitt & Liang (2019) control tasks, ablation and per-layer
sweeps.  Nothing here imports lit_nlp; the LIT glue lives elsewhere.
"""

from lit_plugins.probing.ablation import filter_activations
from lit_plugins.probing.ablation import random_neurons
from lit_plugins.probing.ablation import top_vs_random_ablation
from lit_plugins.probing.control import apply_control_mapping
from lit_plugins.probing.control import control_label_mapping
from lit_plugins.probing.control import control_task_selectivity
from lit_plugins.probing.control import make_control_labels
from lit_plugins.probing.control import selectivity
from lit_plugins.probing.metrics import accuracy
from lit_plugins.probing.metrics import accuracy_and_f1
from lit_plugins.probing.metrics import compute_score
from lit_plugins.probing.metrics import evaluate_probe
from lit_plugins.probing.metrics import f1
from lit_plugins.probing.metrics import f1_per_class
from lit_plugins.probing.metrics import matthews_corrcoef
from lit_plugins.probing.metrics import METRICS
from lit_plugins.probing.metrics import pearson
from lit_plugins.probing.metrics import pearson_and_spearman
from lit_plugins.probing.metrics import spearman
from lit_plugins.probing.neurons import get_bottom_neurons
from lit_plugins.probing.neurons import get_fixed_number_of_bottom_neurons
from lit_plugins.probing.neurons import get_neuron_ordering
from lit_plugins.probing.neurons import get_neuron_ordering_granular
from lit_plugins.probing.neurons import get_random_neurons
from lit_plugins.probing.neurons import get_top_neurons
from lit_plugins.probing.neurons import get_top_neurons_hard_threshold
from lit_plugins.probing.probes import LinearProbe
from lit_plugins.probing.probes import train_linear_regression_probe
from lit_plugins.probing.probes import train_logistic_regression_probe
from lit_plugins.probing.representations import LayerSweep
from lit_plugins.probing.representations import map_word_labels_to_subwords
from lit_plugins.probing.representations import pool_sentence
from lit_plugins.probing.representations import STRATEGIES
from lit_plugins.probing.representations import token_dataset
from lit_plugins.probing.representations import word_level_activations

__all__ = [
    "LayerSweep", "LinearProbe", "METRICS", "STRATEGIES", "accuracy",
    "accuracy_and_f1", "apply_control_mapping", "compute_score",
    "control_label_mapping", "control_task_selectivity", "evaluate_probe",
    "f1", "f1_per_class", "filter_activations", "get_bottom_neurons",
    "get_fixed_number_of_bottom_neurons", "get_neuron_ordering",
    "get_neuron_ordering_granular", "get_random_neurons", "get_top_neurons",
    "get_top_neurons_hard_threshold", "make_control_labels",
    "map_word_labels_to_subwords", "matthews_corrcoef", "pearson",
    "pearson_and_spearman", "pool_sentence", "random_neurons",
    "selectivity", "spearman", "token_dataset", "top_vs_random_ablation",
    "train_linear_regression_probe", "train_logistic_regression_probe",
    "word_level_activations",
]
