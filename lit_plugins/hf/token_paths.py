"""Layer conductance for a tagged word: why is word j tagged X, through one hidden layer.

F = p(tag X | word j), the softmax probability at the word's first piece that
`HFTokenTagger` reads the tag from. Along the straight path x(α) = b + α(x − b) in
input word-embedding space (IG's path), the conductance of hidden unit (t, k) of
hidden_states[layer] is ∫₀¹ ∂F/∂h_tk · dh_tk/dα dα (Dhamdhere et al. 2018); summed
over the layer's units of a word piece it is that piece's share of F(x) − F(b), and
its total is F(x) − F(b) (completeness, reported like IG's).

The integrand is the sequence classifiers' (`hf.paths.conductance_path_fn`: dh/dα
exact by forward-mode AD, or by the double-backward trick where an op has no
forward-AD formula), with the tagger's F as the score; the quadrature, adaptive mode
and completeness report are `attribution.conductance`'s. No `lit_nlp` here.
"""

from __future__ import annotations

from typing import Any

import torch

from lit_plugins.attribution import conductance as conductance_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.hf import layer_hooks
from lit_plugins.hf import paths as hf_paths

JsonDict = dict[str, Any]


def layer_conductance_path(
    tagger,
    inputs: list[JsonDict],
    layer: int,
    targets=None,
    baseline: str = "zero",
    keep_special: bool = False,
    jvp: str = "auto",
):
    """(path_fn, batch, targets) for `conductance.layer_conductance`: per path point
    (F, [word pieces, hidden]) at hidden_states[`layer`] (0 = the embedding output).

    Args:
      tagger: an `HFTokenTagger`.
      inputs: examples with the tagger's text field.
      layer: hidden_states index in [0, tagger.num_layers].
      targets: (word or None, tag or None) per example, as `HFTokenTagger.resolve_targets`.
      baseline, keep_special: as `HFTokenTagger.integrated_gradients_path`.
      jvp: 'auto', 'forward' or 'double_backward' (see `hf.paths.conductance_path_fn`).
    """
    layer = layer_hooks.check_layer(layer, tagger.num_layers)
    setup, chosen = tagger.path_setup(inputs, targets, baseline, keep_special)
    with tagger.inference_lock, torch.no_grad():
        states = tagger.model(
            inputs_embeds=setup.x_word, output_hidden_states=True, **setup.other
        ).hidden_states
    # The hooks must find the site whose output the layers above read.
    tagger._check_substitution(setup.x_word, states[layer], setup.other, layer)
    score = tagger.target_score(setup.batch, chosen)
    return hf_paths.conductance_path_fn(tagger, setup, layer, score, jvp), setup.batch, chosen


def layer_conductance(
    tagger,
    inputs: list[JsonDict],
    layer: int,
    targets=None,
    options: ig_lib.IGOptions = ig_lib.DEFAULTS,
    jvp: str = "auto",
) -> list[JsonDict]:
    """Per example: the word pieces, the `conductance.LayerConductanceResult` (its
    [pieces, hidden] conductance, token and neuron totals, completeness), the resolved
    (word, tag index) target, the words and each piece's word. `options`: IG's path
    settings (rule, steps, tolerance, baseline, keep_special; its `layer` is unused)."""
    path_fn, batch, chosen = layer_conductance_path(
        tagger, inputs, layer, targets, options.baseline, options.keep_special, jvp
    )
    results = conductance_lib.layer_conductance(len(inputs), path_fn, **options.quadrature())
    return [
        {
            "tokens": batch["tokens"][i],
            "result": res,
            "target": chosen[i],
            "words": batch["words"][i],
            "first": batch["first"][i],
            "word_ids": batch["word_ids"][i],
        }
        for i, res in enumerate(results)
    ]
