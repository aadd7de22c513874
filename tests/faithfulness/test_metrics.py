"""The LIT-free faithfulness core (lit_plugins.attribution.faithfulness) and
the HF perturbation adapter (lit_plugins.hf.perturb)."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from lit_plugins.faithfulness import metrics as ff
from lit_plugins.faithfulness import summary
from lit_plugins.faithfulness.perturbed_inputs import REMOVALS, Row, TokenizedExample
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import ferret_reference, tiny_models

CLS, SEP, MASK, PAD = 101, 102, 103, 0


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class BagOfWords:
    """p(class 1) = σ(b + Σ over attended tokens of w[id]); records its calls."""

    def __init__(self, weights, bias=0.0):
        self.w = dict(weights)
        self.b = bias
        self.calls = []

    def logit(self, ids, attention=None):
        attention = np.ones(len(ids)) if attention is None else attention
        return self.b + sum(self.w.get(int(t), 0.0) * a for t, a in zip(ids, attention))

    def __call__(self, rows):
        self.calls.append(list(rows))
        p = np.array([sigmoid(self.logit(r.input_ids, r.attention)) for r in rows])
        return np.stack([1 - p, p], axis=1)


def example(word_ids, target=1):
    ids = np.array([CLS, *word_ids, SEP])
    special = np.isin(ids, [CLS, SEP])
    return TokenizedExample(ids, special, target)


def full_salience(values):
    """Per-token scores with the special tokens' (ignored) values set to 99."""
    return np.array([99.0, *values, 99.0])


# ----------------------------------------------------- closed-form values --
def test_bag_of_words_closed_form():
    # 10 words with distinct positive weights, specials weigh 0.3 (never removed).
    w = {i: 0.1 * i for i in range(1, 11)}
    model = BagOfWords({**w, CLS: 0.3, SEP: 0.3}, bias=-2.0)
    words = [3, 7, 1, 10, 5, 2, 9, 4, 8, 6]
    ex = example(words)
    exact = full_salience([w[t] for t in words])  # the exact attribution (in logit space)
    res = ff.score([ex], {"exact": [exact]}, model, random_baseline=False)[0]["exact"]

    z = -2.0 + 0.6 + sum(w.values())
    top = sorted(w.values(), reverse=True)
    s = np.cumsum([0.0, *top])  # S_e: sum of the e largest weights
    f = sigmoid(z)
    # k = 10 %..100 % of 10 tokens = 1..10 tokens.
    assert res.comprehensiveness == pytest.approx(
        np.mean([f - sigmoid(z - s[k]) for k in range(1, 11)])
    )
    assert res.sufficiency == pytest.approx(
        np.mean([f - sigmoid(-2.0 + 0.6 + s[k]) for k in range(1, 11)])
    )
    deletion = [sigmoid(z - s[e]) for e in range(11)]
    insertion = [sigmoid(-2.0 + 0.6 + s[e]) for e in range(11)]
    x = np.arange(11) / 10
    assert res.deletion_auc == pytest.approx(np.trapz(deletion, x))
    assert res.insertion_auc == pytest.approx(np.trapz(insertion, x))
    np.testing.assert_allclose(res.deletion_curve[1], deletion)
    np.testing.assert_allclose(res.insertion_curve[0], x)
    assert res.full_prob == pytest.approx(f)
    assert res.empty_prob == pytest.approx(sigmoid(-2.0 + 0.6))
    # σ is monotone: the leave-one-out drop ranks tokens exactly like w.
    assert res.tau_loo == pytest.approx(1.0)
    assert res.num_tokens == 10 and res.num_rationales == 10 and res.removal == "delete"


def test_exact_attribution_is_the_most_comprehensive_ordering():
    w = {1: 1.5, 2: -0.7, 3: 0.4, 4: 2.0, 5: 0.9}
    model = BagOfWords(w, bias=-1.0)
    ex = example([1, 2, 3, 4, 5])
    exact = np.array([w[t] for t in (1, 2, 3, 4, 5)])
    perms = {f"p{i}": [full_salience(p)] for i, p in enumerate(itertools.permutations(exact))}
    res = ff.score([ex], perms, model, random_baseline=False)[0]
    exact_name = next(k for k, v in perms.items() if np.array_equal(v[0][1:-1], exact))
    best = max(r.comprehensiveness for r in res.values())
    assert res[exact_name].comprehensiveness == pytest.approx(best)
    assert res[exact_name].sufficiency == pytest.approx(min(r.sufficiency for r in res.values()))
    assert res[exact_name].deletion_auc == pytest.approx(min(r.deletion_auc for r in res.values()))
    assert res[exact_name].insertion_auc == pytest.approx(
        max(r.insertion_auc for r in res.values())
    )
    assert res[exact_name].tau_loo == pytest.approx(1.0)
    neg = ff.score([ex], {"neg": [full_salience(-exact)]}, model, random_baseline=False)[0]["neg"]
    assert neg.tau_loo == pytest.approx(-1.0)


def test_mask_and_pad_removal():
    w = {1: 1.0, 2: 0.5, 3: -0.25, MASK: 0.2}
    model = BagOfWords(w, bias=0.1)
    ex = example([1, 2, 3])
    sal = [full_salience([1.0, 0.5, -0.25])]
    masked = ff.score([ex], {"m": sal}, model, removal="mask", mask_id=MASK, random_baseline=False)
    padded = ff.score([ex], {"m": sal}, model, removal="pad", pad_id=PAD, random_baseline=False)
    deleted = ff.score([ex], {"m": sal}, model, random_baseline=False)
    z = 0.1 + 1.25
    # 3 tokens: k = 10..30 % -> 0 (skipped); 40..60 % -> 1; 70..100 % -> 2, and only
    # 2 tokens are positive: rationales {1} and {1, 2}.
    comp_mask = np.mean([sigmoid(z) - sigmoid(z - 1.0 + 0.2), sigmoid(z) - sigmoid(z - 1.5 + 0.4)])
    assert masked[0]["m"].comprehensiveness == pytest.approx(comp_mask)
    assert masked[0]["m"].removal == "mask"
    # Pad tokens are not attended to: for a bag of words the same as deleting.
    assert padded[0]["m"].metrics() == pytest.approx(deleted[0]["m"].metrics())
    with pytest.raises(ValueError, match="mask token"):
        ff.score([ex], {"m": sal}, model, removal="mask")
    with pytest.raises(ValueError, match="removal must be one of"):
        ff.score([ex], {"m": sal}, model, removal="zero")


# ------------------------------------------------------ order and specials --
def test_invariant_to_the_order_of_equal_scores():
    # A and B are tied; with argsort tie-breaking (ferret) the token removed
    # first would depend on which comes first in the sentence.
    A, B, C, D = 1, 2, 3, 4
    model = BagOfWords({A: 2.0, B: -1.0, C: 0.5, D: 0.25}, bias=-0.5)

    def run(order, scores):
        ex = example(order)
        sal = full_salience([scores[t] for t in order])
        return ex, sal, ff.score([ex], {"m": [sal]}, model, random_baseline=False)[0]["m"]

    scores = {A: 0.5, B: 0.5, C: 0.1, D: 0.0}
    ex1, sal1, first = run([A, B, C, D], scores)
    ex2, sal2, second = run([B, A, D, C], scores)
    assert first.metrics() == pytest.approx(second.metrics())
    # ferret's argsort order gives different numbers for the two orders.
    run_bow = lambda seqs: model([Row(0, s, np.ones(len(s)), np.arange(len(s))) for s in seqs])
    f1 = ferret_reference.aopc_comprehensiveness(run_bow, ex1.input_ids, sal1, 1)
    f2 = ferret_reference.aopc_comprehensiveness(run_bow, ex2.input_ids, sal2, 1)
    assert f1 != pytest.approx(f2)


def test_tied_groups_are_removed_together():
    scores = np.array([0.3, 0.3, 0.3, 0.1, -0.2])
    order, ends = ff.rank_groups(scores)
    assert ends.tolist() == [3, 4, 5]
    assert set(order[:3].tolist()) == {0, 1, 2}
    # 10 % and 20 % of 5 tokens: 0 and 1 token -> the group of three; positives only.
    assert ff.aopc_prefixes(scores, ff.DEFAULT_PERCENTAGES) == [3, 4]
    assert ff.aopc_prefixes(scores, ff.DEFAULT_PERCENTAGES, only_positive=False) == [3, 4, 5]


@pytest.mark.parametrize("removal", REMOVALS)
def test_special_tokens_are_never_removed(removal):
    model = BagOfWords({1: 1.0, 2: -0.5, 3: 0.7, CLS: 0.1, SEP: 0.1})
    ex = example([1, 2, 3, 1])
    # The specials get the largest scores: they must still never be removed.
    sal = np.array([50.0, 1.0, -0.5, 0.7, 0.9, 50.0])
    ff.score(
        [ex], {"m": [sal]}, model, removal=removal, mask_id=MASK, pad_id=PAD, random_baseline=True
    )
    rows = [r for call in model.calls for r in call]
    assert len(rows) > 5
    for r in rows:
        present = r.input_ids[r.attention.astype(bool)]
        assert present[0] == CLS and present[-1] == SEP
        assert r.positions[0] == 0 and r.positions[-1] == 5


# --------------------------------------------------------------- batching --
@pytest.fixture(scope="module")
def tiny_bert():
    model, tokenizer = tiny_models.make("bert")
    with torch.no_grad():  # a sharper head: removals move the probabilities by 0.01-0.5
        model.classifier.weight.mul_(50.0)
    return HFSequenceClassifier(model=model, tokenizer=tokenizer, labels=["neg", "pos"])


SENTENCES = [
    "the film was not bad at all",
    "i loved it",
    "boring",
    "a very slow start but a stunning finale",
]


def _random_maps(examples, seed, methods=2):
    rng = np.random.default_rng(seed)
    return {
        f"m{j}": [rng.standard_normal(len(e.input_ids)) for e in examples] for j in range(methods)
    }


def test_batched_equals_one_at_a_time(tiny_bert):
    runner = PerturbationRunner(tiny_bert)
    inputs = [{"sentence": s} for s in SENTENCES]
    examples, prob_fn = runner.encode(inputs)
    maps = _random_maps(examples, 0)
    batched = ff.score(examples, maps, prob_fn, batch_size=512)
    for i, inp in enumerate(inputs):
        alone_ex, alone_fn = runner.encode([inp])
        alone = ff.score(alone_ex, {k: [v[i]] for k, v in maps.items()}, alone_fn, batch_size=1)[0]
        for name, res in alone.items():
            assert res.metrics() == pytest.approx(batched[i][name].metrics(), abs=1e-5)


def test_runner_matches_the_wrapper_and_marks_specials(tiny_classifier):
    inputs = [{"sentence": s} for s in SENTENCES]
    examples, prob_fn = PerturbationRunner(tiny_classifier).encode(inputs)
    outputs = list(tiny_classifier.predict(inputs))
    rows = [
        Row(i, e.input_ids, np.ones(e.input_ids.size, np.int64), np.arange(e.input_ids.size))
        for i, e in enumerate(examples)
    ]
    np.testing.assert_allclose(prob_fn(rows), [o["probas"] for o in outputs], atol=1e-5)
    for e, o in zip(examples, outputs):
        assert len(e.input_ids) == len(o["tokens"])
        assert e.special[0] and e.special[-1] and not e.special[1:-1].any()


def test_text_pairs_keep_their_segments():
    model, tokenizer = tiny_models.make("bert")
    pair = HFSequenceClassifier(
        model=model, tokenizer=tokenizer, labels=["a", "b"], text_fields=("premise", "hypothesis")
    )
    inputs = [{"premise": "the film was good", "hypothesis": "i loved it"}]
    examples, prob_fn = PerturbationRunner(pair).encode(inputs)
    e = examples[0]
    assert e.special.sum() == 3  # [CLS] ... [SEP] ... [SEP]
    row = Row(0, e.input_ids, np.ones(e.input_ids.size, np.int64), np.arange(e.input_ids.size))
    np.testing.assert_allclose(
        prob_fn([row])[0], next(iter(pair.predict(inputs)))["probas"], atol=1e-5
    )


# ---------------------------------------------------------- ferret parity --
@pytest.mark.parametrize("removal", ["delete", "mask"])
def test_same_numbers_as_ferret(tiny_bert, removal):
    runner = PerturbationRunner(tiny_bert)
    examples, prob_fn = runner.encode([{"sentence": s} for s in SENTENCES])
    maps = _random_maps(examples, 1, methods=1)["m0"]
    ours = ff.score(
        examples, {"m": maps}, prob_fn, runner.options(removal=removal, random_baseline=False)
    )
    for i, (ex, sal) in enumerate(zip(examples, maps)):
        run = lambda seqs: prob_fn(
            [Row(i, s, np.ones(len(s), np.int64), np.arange(len(s))) for s in seqs]
        )
        target = ours[i]["m"].target
        kw = dict(remove_tokens=removal == "delete", mask_id=runner.mask_id)
        comp = ferret_reference.aopc_comprehensiveness(run, ex.input_ids, sal, target, **kw)
        assert ours[i]["m"].comprehensiveness == pytest.approx(comp, abs=1e-6)
        if removal == "delete":
            # (ferret's mask-mode sufficiency masks the rationale itself, not the rest.)
            suff = ferret_reference.aopc_sufficiency(run, ex.input_ids, sal, target, **kw)
            assert ours[i]["m"].sufficiency == pytest.approx(suff, abs=1e-6)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tau = ferret_reference.tau_loo(run, ex.input_ids, sal, target)
            # One token ("boring"): τ undefined; scipy/ferret NaN, ours the neutral 0.
            assert ours[i]["m"].tau_loo == pytest.approx(0.0 if np.isnan(tau) else tau, abs=1e-9)


def test_percentages_match_ferrets_float_thresholds():
    for m in range(1, 300):
        ours = [int(np.floor(p * m / 100)) for p in ff.DEFAULT_PERCENTAGES]
        theirs = [int(t * m) for t in ferret_reference.THRESHOLDS]
        assert ours == theirs, m


# -------------------------------------------------------------- bad input --
def test_bad_salience_raises_clear_errors():
    model = BagOfWords({1: 1.0, 2: 0.5})
    ex = example([1, 2])
    with pytest.raises(ValueError, match="non-empty"):
        ff.score([ex], {"m": [np.array([])]}, model)
    with pytest.raises(ValueError, match="has 3 values but the example has 4 tokens"):
        ff.score([ex], {"m": [np.ones(3)]}, model)
    with pytest.raises(ValueError, match="has 5 values"):
        ff.score([ex], {"m": [np.ones(5)]}, model)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ff.score([ex], {"m": [np.array([0, np.nan, 1, 0])]}, model)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ff.score([ex], {"m": [np.array([0, np.inf, 1, 0])]}, model)
    with pytest.raises(ValueError, match="1 salience maps for 2 examples"):
        ff.score([ex, ex], {"m": [np.ones(4)]}, model)
    with pytest.raises(ValueError, match="reserved"):
        ff.score([ex], {ff.RANDOM: [np.ones(4)]}, model)
    for bad in ([0], [10, 101], [-5], [float("nan")], [], ["x"]):
        with pytest.raises(ValueError, match=r"\(0, 100\]"):
            ff.score([ex], {"m": [np.ones(4)]}, model, percentages=bad)
    with pytest.raises(ValueError, match="target 5"):
        ff.score([TokenizedExample(ex.input_ids, ex.special, 5)], {"m": [np.ones(4)]}, model)


def test_neutral_values_are_finite_and_documented():
    model = BagOfWords({1: 1.0, 2: 0.5}, bias=-0.2)
    ex = example([1, 2])
    zero = ff.score([ex], {"m": [np.zeros(4)]}, model)[0]["m"]
    f, f_empty = sigmoid(1.3), sigmoid(-0.2)
    assert zero.comprehensiveness == 0.0  # no positive token: nothing removed
    assert zero.sufficiency == pytest.approx(f - f_empty)  # the empty rationale
    assert zero.tau_loo == 0.0  # a constant map has no ranking
    assert zero.deletion_auc == pytest.approx((f + f_empty) / 2)  # one tie group
    # One removable token: every k below 100 % rounds to 0 tokens.
    one = ff.score([example([1])], {"m": [np.array([0, 1.0, 0])]}, model)[0]["m"]
    assert one.num_rationales == 1 and one.tau_loo == 0.0
    assert one.comprehensiveness == pytest.approx(sigmoid(0.8) - sigmoid(-0.2))
    # Only special tokens: nothing to remove.
    empty = ff.score([example([])], {"m": [np.zeros(2)]}, model)[0]["m"]
    assert empty.metrics() == pytest.approx(
        {
            "comprehensiveness": 0.0,
            "sufficiency": 0.0,
            "deletion_auc": sigmoid(-0.2),
            "insertion_auc": sigmoid(-0.2),
            "tau_loo": 0.0,
        }
    )
    for res in (zero, one, empty):
        assert all(np.isfinite(v) for v in res.metrics().values())


def test_random_baseline_is_seeded_per_example():
    model = BagOfWords({1: 1.0, 2: 0.5, 3: -1.0})
    a, b = example([1, 2, 3]), example([3, 2, 1])
    both = ff.score([a, b], {}, model, seed=3)
    alone = ff.score([b], {}, model, seed=3)
    assert list(both[0]) == [ff.RANDOM]
    assert both[1][ff.RANDOM].metrics() == alone[0][ff.RANDOM].metrics()
    np.testing.assert_array_equal(ff.random_salience(a, 3), ff.random_salience(a, 3))
    assert not np.array_equal(ff.random_salience(a, 3), ff.random_salience(a, 4))


def test_shared_perturbations_run_once():
    model = BagOfWords({i: 0.1 * i for i in range(1, 9)})
    ex = example(list(range(1, 9)))
    sal = full_salience(np.arange(1, 9) / 10)
    ff.score([ex], {"a": [sal], "b": [sal * 2]}, model, random_baseline=False)
    rows = [r for call in model.calls for r in call]
    keys = {(r.example, r.positions.tobytes()) for r in rows}
    assert len(keys) == len(rows)  # no perturbation twice
    # f(x), 8 leave-one-out, 8 deletion prefixes (the last = the empty input;
    # the first = leaving out the top token) and 7 insertion prefixes besides
    # the empty one (the last = leaving out the bottom token): the second
    # method, with the same ranking, adds nothing.
    assert len(rows) == 1 + 8 + (8 - 1) + (7 - 1)


def test_aggregation():
    values = np.arange(20.0)
    s = summary.summarize(values, seed=0)
    assert s["mean"] == pytest.approx(9.5) and s["median"] == pytest.approx(9.5)
    assert s["ci_low"] < 9.5 < s["ci_high"] and s["n"] == 20
    assert summary.summarize(values, seed=0) == s  # seeded
    assert summary.summarize([2.0]) == {
        "mean": 2.0,
        "median": 2.0,
        "ci_low": 2.0,
        "ci_high": 2.0,
        "n": 1,
    }
    assert summary.summarize([np.nan, 1.0])["n"] == 1
    _, y = summary.mean_curve([(np.array([0, 1.0]), np.array([1.0, 0.0]))], np.array([0, 0.5, 1]))
    np.testing.assert_allclose(y, [1, 0.5, 0])
