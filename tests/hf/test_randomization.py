"""Model-parameter randomization (lit_plugins.hf.randomization) and the sanity
check on real gradient maps: a tiny model's maps move when its layers are
randomized from the top, a map computed from the input alone does not."""

import numpy as np
import pytest
import torch

from lit_plugins.faithfulness import sanity
from lit_plugins.hf import randomization
from tests.kit import tiny_models

TEXTS = [
    "the film was great but the plot was slow",
    "not good at all , really boring",
    "i loved this brilliant movie",
    "awful acting and a terrible mess",
    "fun",
]


def params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


@pytest.mark.parametrize(
    "arch, names, top_extra",
    [
        ("bert", ["head", "layer 2", "layer 1", "embeddings"], None),
        ("distilbert", ["head", "layer 2", "layer 1", "embeddings"], None),
        ("albert", ["head", "layers (shared)", "embeddings"], None),
        ("modernbert", ["head", "layer 2", "layer 1", "embeddings"], "model.final_norm.weight"),
        ("gpt2", ["head", "layer 2", "layer 1", "embeddings"], "transformer.ln_f.weight"),
    ],
)
def test_steps_partition_the_parameters_top_first(arch, names, top_extra):
    model, _ = tiny_models.make(arch)
    steps = randomization.randomization_steps(model)
    assert [s.name for s in steps] == names
    listed = [p for s in steps for p in s.parameters]
    assert sorted(listed) == sorted(n for n, _ in model.named_parameters())  # each once
    assert len(listed) == len(set(listed))
    top_layer = steps[1].parameters
    if top_extra is not None:  # the final norm yields hidden_states[L]: with the top layer
        assert top_extra in top_layer
    assert all(
        "embed" in p or "wte" in p or "wpe" in p for p in steps[-1].parameters if "weight" in p
    )


def test_randomized_copies_are_seeded_and_leave_the_model_alone():
    model, _ = tiny_models.make("bert")
    before = params(model)
    a = randomization.randomized(model, ["head", "layer 2"], seed=0)
    b = randomization.randomized(model, ["head", "layer 2"], seed=0)
    c = randomization.randomized(model, ["head", "layer 2"], seed=1)
    assert changed(model, before) == set()
    steps = {s.name: s.parameters for s in randomization.randomization_steps(model)}
    expected = set(steps["head"]) | set(steps["layer 2"])
    # LayerNorm weights of an untrained tiny model are all 1 (std 0): redrawn
    # to their mean, unchanged; every other tensor of the two steps changes.
    constant = {n for n, p in before.items() if p.numel() > 1 and p.std() == 0}
    assert changed(a, before) == expected - constant
    assert all(torch.equal(p, dict(b.named_parameters())[n]) for n, p in a.named_parameters())
    assert changed(c, params(a)) == expected - constant
    # The redraw keeps each tensor's scale (a 32×32 matrix: mean and std within 15 %).
    name = "bert.encoder.layer.1.attention.self.query.weight"
    new, old = dict(a.named_parameters())[name].detach(), before[name]
    assert abs(new.std() / old.std() - 1) < 0.15
    with pytest.raises(ValueError, match="Unknown randomization steps"):
        randomization.randomized(model, ["layer 9"])


def test_cascading_and_independent_match_the_one_shot_copies():
    model, _ = tiny_models.make("bert")
    before = params(model)
    names = [s.name for s in randomization.randomization_steps(model)]
    seen = []
    for j, (name, m) in enumerate(randomization.cascading(model, seed=3)):
        seen.append(name)
        ref = randomization.randomized(model, names[: j + 1], seed=3)
        assert changed(m, params(ref)) == set()
    assert seen == names
    # in_place: the caller's own copy is randomized (and yielded) itself.
    own = randomization.randomized(model, [], seed=3)
    for j, (name, m) in enumerate(randomization.cascading(own, seed=3, in_place=True)):
        assert m is own
        assert changed(m, params(randomization.randomized(model, names[: j + 1], seed=3))) == set()
    for name, m in randomization.independent(model, seed=3):
        ref = randomization.randomized(model, [name], seed=3)
        assert changed(m, params(ref)) == set()
    assert changed(model, before) == set()


def _maps(model, tok, method):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    mask = enc["attention_mask"].bool()
    ids = enc["input_ids"]
    special = [np.isin(ids[i][mask[i]].numpy(), tok.all_special_ids) for i in range(len(TEXTS))]
    if method == "token length":  # depends on the input only
        pieces = [tok.convert_ids_to_tokens(ids[i][mask[i]].tolist()) for i in range(len(TEXTS))]
        return [np.array([len(p) for p in ps], float) for ps in pieces], special
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    probs = torch.softmax(model(inputs_embeds=emb, attention_mask=enc["attention_mask"]).logits, -1)
    (grad,) = torch.autograd.grad(probs[:, 1].sum(), emb)
    gxi = (grad * emb).sum(-1).detach()
    return [gxi[i][mask[i]].numpy() for i in range(len(TEXTS))], special


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_gradient_maps_move_and_input_only_maps_fail(arch):
    model, tok = tiny_models.make(arch)
    result = {}
    for method in ("gradient x input", "token length"):
        original, special = _maps(model, tok, method)
        # Self-correlation: 1 on every multi-token example, undefined on "fun".
        (self_corr,) = sanity.step_correlations(original, {"none": original}, special)
        assert self_corr.defined.tolist() == [True, True, True, True, False]
        assert self_corr.mean() == pytest.approx(1.0)
        cascade = {name: _maps(m, tok, method)[0] for name, m in randomization.cascading(model)}
        result[method] = sanity.step_correlations(original, cascade, special)
    gradient, length = result["gradient x input"], result["token length"]
    # Randomizing the head alone already moves the gradient maps, and with the whole
    # model randomized little rank agreement is left.
    assert gradient[0].mean() < 0.9
    assert gradient[-1].mean() < 0.5 and gradient[-1].mean(absolute=True) < 0.5
    assert sanity.passes(gradient) is True
    # Token length ignores the model: correlation 1 at every step, flagged.
    assert [s.mean() for s in length] == pytest.approx([1.0] * len(length))
    assert sanity.passes(length) is False
    # The one-token text is undefined throughout, never NaN.
    assert not any(np.isnan(s.spearman).any() or s.defined[-1] for s in gradient + length)
