"""Config parsing and small helpers shared by our LIT interpreters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types
from lit_nlp.lib import utils as lit_utils

from lit_plugins.lit import specs

JsonDict = specs.JsonDict

# Config keys LIT users know from lit_nlp.components.gradient_maps.
CLASS_KEY = "Class to explain"
NORMALIZATION_KEY = "Normalize"
INTERPOLATION_KEY = "Interpolation steps"
# Set by LIT's Salience Maps module from its "Class to explain" dropdown.
TARGET_INFO_KEY = "_salience_target"
EXCLUDE_SPECIAL_KEY = "Exclude special tokens from normalization"


def parse_int(config: JsonDict, key: str, default: int, low: int, high: int) -> int:
    value = config.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key!r} must be an integer in [{low}, {high}], got {value!r}.") from None
    if not number.is_integer() or not low <= number <= high:
        raise ValueError(f"{key!r} must be an integer in [{low}, {high}], got {value!r}.")
    return int(number)


def parse_float(config: JsonDict, key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:  # also rejects NaN
        raise ValueError(f"{key!r} must be a number in [{low}, {high}], got {value!r}.")
    return number


def parse_bool(config: JsonDict, key: str, default: bool) -> bool:
    value = config.get(key, default)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{key!r} must be true or false, got {value!r}.")


def parse_choice(config: JsonDict, key: str, default: str, choices: Sequence[str]) -> str:
    value = config.get(key, default)
    if value not in choices:
        raise ValueError(f"{key!r} must be one of {list(choices)}, got {value!r}.")
    return value


def target_vocab(model: lit_model.Model, target_field: str | None) -> list[str] | None:
    """Class names of the gradient-target field, if it has a vocab."""
    spec = model.input_spec().get(target_field) or model.output_spec().get(target_field)
    vocab = getattr(spec, "vocab", None)
    return list(vocab) if vocab else None


def requested_class(
    config: JsonDict, model: lit_model.Model, fields: specs.GradientFields
) -> str | None:
    """The class to explain: the config's text, else the Salience Maps module's
    dropdown, else None (the model's argmax)."""
    vocab = target_vocab(model, fields.target)
    text = str(config.get(CLASS_KEY, "") or "").strip()
    if text:
        if vocab is not None and text not in vocab:
            raise ValueError(
                f"{CLASS_KEY!r} {text!r} is not a class of this "
                f"model; accepted: {vocab} (or empty for the "
                "predicted class)."
            )
        return text
    info = config.get(TARGET_INFO_KEY)
    if isinstance(info, dict) and info.get("index") is not None and vocab:
        index = int(info["index"])
        if not 0 <= index < len(vocab):
            raise ValueError(f"Target index {index} out of range for {vocab}.")
        return vocab[index]
    return None


def outputs_for_target(
    inputs: list[JsonDict],
    model: lit_model.Model,
    model_outputs: list[JsonDict] | None,
    fields: specs.GradientFields,
    target: str | None,
) -> list[JsonDict]:
    """Model outputs whose gradients are for `target` (re-predicts if needed).

    With no explicit target the given outputs are used as they are, which keeps
    the defaults numerically identical to LIT's gradient_maps.
    """
    if model_outputs is None:
        model_outputs = list(model.predict(inputs))
    if target is None or fields.target is None:
        return model_outputs
    if all(o.get(fields.target) == target for o in model_outputs):
        return model_outputs
    pinned = [lit_utils.make_modified_input(ex, {fields.target: target}, "target") for ex in inputs]
    return list(specs.unwrap(model).predict(pinned))


def is_salience_spec(field: lit_types.LitType) -> bool:
    return isinstance(field, (lit_types.TokenSalience, lit_types.FeatureSalience))


# ------------------------------------------- methods checked by a meta-interpreter --
def ticked_methods(
    config: JsonDict, prefix: str, offered: Iterable[str], default: Callable[[str], bool]
) -> tuple[str, ...]:
    """The methods whose checkbox ``f"{prefix}{name}"`` is ticked (unset: `default(name)`),
    in `offered`'s order; a checkbox naming a method that is not offered raises ValueError
    (Salience Faithfulness and Trust Checks offer the app's salience maps this way)."""
    offered = list(offered)
    unknown = [
        key[len(prefix) :]
        for key in config
        if isinstance(key, str) and key.startswith(prefix) and key[len(prefix) :] not in offered
    ]
    if unknown:
        raise ValueError(
            f"{unknown}: not a salience method served by this app; served: {sorted(offered)}."
        )
    return tuple(name for name in offered if parse_bool(config, f"{prefix}{name}", default(name)))


def fitting_methods(
    offered: Mapping[str, Any],
    names: Sequence[str],
    model: lit_model.Model,
    dataset: Any,
    verb: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """({name: interpreter} of `names` that fit the model, {name: why not} for the
    rest of `offered`: "not <verb> (unticked)" or "(does not fit this model)")."""
    chosen, notes = {}, {}
    for name, interp in offered.items():
        if name not in names:
            notes[name] = f"not {verb} (unticked)"
            continue
        try:
            fits = interp.is_compatible(model, dataset)
        except Exception:  # a check that fails is treated as "does not fit"
            fits = False
        if fits:
            chosen[name] = interp
        else:
            notes[name] = f"not {verb} (does not fit this model)"
    return chosen, notes


def method_identities(chosen: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(name, class path) of each chosen method: a dataset-level cache key's
    methods part, so a stored summary is not read for another method that an
    app serves under the same name."""
    return tuple((n, f"{type(i).__module__}.{type(i).__qualname__}") for n, i in chosen.items())


# ------------------------------------------------------ labelled chips --
# LIT 1.3's Salience Maps module shows a FeatureSalience entry as
# "key: <the selected datapoint's field named key>", so keys that are not
# dataset fields (neurons, layers, diagnostics) read "key: undefined" and
# their values show only as a colour. A TokenSalience renders each token as a
# chip with exactly its text, coloured by its value, in the given order: our
# lists of (label, value) are shown that way, with the value in the text.
CHIP_SEPARATOR = " = "


def labelled_chips(
    items: Iterable[tuple[str, float]], value_format: str | None = "+.4g"
) -> dtypes.TokenSalience:
    """(label, value) pairs as chips reading "label = value" (the value in
    `value_format`; None: the label is the whole text), coloured by value.

    `chips_dict` gives the {label: value} back (values at full precision).
    """
    items = list(items)
    texts = [
        label if value_format is None else f"{label}{CHIP_SEPARATOR}{value:{value_format}}"
        for label, value in items
    ]
    return dtypes.TokenSalience(texts, np.asarray([v for _, v in items], dtype=np.float64))


def chips_dict(chips, labels: Sequence[str] | None = None) -> dict[str, float]:
    """{label: value} from `labelled_chips` output (a TokenSalience or its JSON
    dict). `labels`: the labels in chip order, for chips whose text is not
    "label = value"."""
    if isinstance(chips, dict):
        tokens, values = chips["tokens"], chips["salience"]
    else:
        tokens, values = chips.tokens, chips.salience
    if labels is None:
        labels = [str(t).rsplit(CHIP_SEPARATOR, 1)[0] for t in tokens]
    return dict(zip(labels, map(float, values)))
