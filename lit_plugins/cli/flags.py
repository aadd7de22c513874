"""Every flag of ``python -m lit_plugins <command>``, in one namespace (absl, as LIT's own
server and the demo use): a flag name means one thing in every command that takes it,
and its help says which commands do. The model and data flags shared with the demo are
in `cli.model_data`. Defaults of the analyses are the options dataclasses' own.
"""

from __future__ import annotations

from absl import flags

from lit_plugins.attribution.integrated_gradients import DEFAULTS as IG
from lit_plugins.probing.options import DEFAULTS as PROBE
from lit_plugins.txray.options import DEFAULTS as TXRAY

OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where the command writes its results (every command)."
)
MODEL = flags.DEFINE_string(
    "model",
    None,
    "Which of --models to run (its name; default: the first): probe, txray, attribute, "
    "faithfulness.",
)
SHARD_SIZE = flags.DEFINE_integer(
    "shard_size",
    0,
    "examples per shard (the unit of resuming and of work per process); "
    "0 = min(256, ceil(examples / 64)).",
)
# attribute
METHODS = flags.DEFINE_list(
    "methods", ["grad_norm", "grad_dot_input", "integrated_gradients"], "attribute: methods."
)
CLASS_TO_EXPLAIN = flags.DEFINE_string(
    "class_to_explain", "", "attribute: class the scores explain (default: the prediction)."
)
NORMALIZE = flags.DEFINE_bool(
    "normalize", False, "attribute: LIT's normalisation of IG/conductance scores."
)
IG_STEPS = flags.DEFINE_integer("ig_steps", IG.steps, "attribute: IG/conductance path points.")
IG_RULE = flags.DEFINE_string(
    "ig_rule",
    IG.rule,
    "attribute: quadrature rule, or 'auto' (plain or graded Gauss-Legendre per example).",
)
IG_BASELINE = flags.DEFINE_string("ig_baseline", IG.baseline, "attribute: IG baseline.")
IG_TOLERANCE = flags.DEFINE_float(
    "ig_tolerance", IG.tolerance or 0.0, "attribute: completeness tolerance (0 = fixed steps)."
)
IG_MAX_STEPS = flags.DEFINE_integer(
    "ig_max_steps",
    IG.max_steps,
    "attribute: adaptive mode's cap, and the rule auto's when an example misses 1 %.",
)
CONDUCTANCE_LAYER = flags.DEFINE_integer(
    "conductance_layer", 3, "attribute: layer of layer_conductance."
)
# probe
LABEL_FIELD = flags.DEFINE_string(
    "label_field", PROBE.label_field, "probe: dataset field (default: the first)."
)
LAYERS = flags.DEFINE_string("layers", "sweep", "probe: 'sweep' (all layers) or one layer index.")
POOLING = flags.DEFINE_string(
    "pooling", PROBE.pooling, "probe: mean/cls (sentence), first/last/mean."
)
LAMBDA_L1 = flags.DEFINE_float("lambda_l1", PROBE.lambda_l1, "probe: L1 penalty.")
LAMBDA_L2 = flags.DEFINE_float("lambda_l2", PROBE.lambda_l2, "probe: squared L2 penalty.")
HELD_OUT = flags.DEFINE_float(
    "held_out_fraction", PROBE.held_out_fraction, "probe: share of examples scored on."
)
SEED = flags.DEFINE_integer(
    "seed",
    PROBE.seed,
    "probe: seed of the train/held-out split; txray, txray-report: the bootstrap's seed "
    "(and the synthetic data's); faithfulness: the random baseline's seed.",
)
TOP_MASS = flags.DEFINE_float(
    "top_mass", PROBE.top_mass, "probe: weight mass of the listed top neurons."
)
# txray
LAYER = flags.DEFINE_integer(
    "layer", TXRAY.layer, "txray: layer (0 = embedding output; default: the last layer)."
)
MODE = flags.DEFINE_string("mode", TXRAY.mode, "txray, txray-report --synthetic: max1 or all.")
FEATURES = flags.DEFINE_string("features", TXRAY.features, "txray: tokens, words or tags.")
TAGS_FIELD = flags.DEFINE_string(
    "tags_field", TXRAY.tags_field, "txray: SequenceTags field (features=tags)."
)
NORMALIZE_DISTANCE = flags.DEFINE_bool(
    "normalize_distance",
    TXRAY.normalize,
    "txray, txray-report: divide distances by the union length (original code).",
)
TOP_K = flags.DEFINE_integer(
    "top_k", TXRAY.top_k, "txray, txray-report: most / least shifted neurons shown."
)
REPORT = flags.DEFINE_bool("report", True, "txray: write the plots (report/).")
REPLICATES = flags.DEFINE_integer(
    "replicates",
    TXRAY.replicates,
    "txray, txray-report: bootstrap replicates over sentences (0: no intervals; "
    "txray-report's default: 200 when both files carry the per-sentence table, else 0).",
)
CONFIDENCE = flags.DEFINE_float(
    "confidence", TXRAY.confidence, "txray: level of the intervals the summary ranks by."
)

# faithfulness
SALIENCE_METHODS = flags.DEFINE_list(
    "salience_methods",
    [],
    "faithfulness: salience methods by display name (default: every method of "
    "lit.methods.default_methods: LIT's four and ours).",
)
REMOVAL = flags.DEFINE_enum(
    "removal", "delete", ["delete", "mask", "pad"], "faithfulness: how removed pieces go."
)
TITLE = flags.DEFINE_string("title", "", "faithfulness: the report's title.")
# txray-report
REFERENCE_FILE = flags.DEFINE_string(
    "reference_file", None, "txray-report: aggregation of model A (reference / pre-trained)."
)
MODEL_FILE = flags.DEFINE_string(
    "model_file", None, "txray-report: aggregation of model B (e.g. fine-tuned)."
)
SYNTHETIC = flags.DEFINE_bool(
    "synthetic", False, "txray-report: run on synthetic activations with planted shifts."
)
DISPLAY_LABELS = flags.DEFINE_list(
    "display_labels", [], "txray-report: names of model A and B (default: the file names)."
)
N_FEATURES = flags.DEFINE_integer("n_features", 10, "txray-report: features per neuron plot.")
WEIGHTING = flags.DEFINE_enum(
    "weighting",
    "mass",
    ["mass", "mean"],
    "txray-report: 'mass' or the original code's 'mean' of normalised activations.",
)
PLOTLYJS = flags.DEFINE_enum(
    "plotlyjs", "directory", ["directory", "inline"], "txray-report: how the HTML loads plotly."
)
PNG = flags.DEFINE_bool("png", True, "txray-report: write the PNG plots.")
HTML = flags.DEFINE_bool("html", True, "txray-report: write the interactive HTML plots.")
NEURONS = flags.DEFINE_integer("neurons", 384, "txray-report --synthetic: neurons.")
VOCAB = flags.DEFINE_integer("vocab", 3000, "txray-report --synthetic: vocabulary size.")
TOKENS = flags.DEFINE_integer("tokens", 14400, "txray-report --synthetic: token positions.")
SAVE_AGGREGATIONS = flags.DEFINE_bool(
    "save_aggregations",
    False,
    "txray-report --synthetic: also write a.npz / b.npz (the command's input format).",
)
