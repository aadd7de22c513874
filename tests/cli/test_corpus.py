"""`python -m lit_plugins probe|txray|attribute` end to end, in real processes.

One process vs two (`torchrun`, gloo on CPU) on the bundled sentences with
tiny random checkpoints saved to disk: the same rows, aggregations and
probes; an `attribute` run killed by a real SIGKILL resumes to the output of
an uninterrupted run; bad input fails before any work.
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from lit_plugins import txray
from lit_plugins.cli import attribute, shards
from lit_plugins.cli import txray as corpus_txray
from lit_plugins.data import loaders
from lit_plugins.lit import saved_results, txray_inputs
from tests.kit import demo_server, launch, tiny_models

N = 13  # not divisible by 2 ranks (nor by the shard size)
LABELS = "negative,positive"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{name: directory} of tiny random classifiers saved with their tokenizers."""
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for name, arch, seed in (("tiny", "bert", 0), ("tinyref", "bert", 1), ("other", "roberta", 0)):
        model, tokenizer = tiny_models.make(arch, num_labels=2, seed=seed)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        out[name] = str(root / name)
    return out


def run_cli(
    command, out_dir, *flags, world=1, check=True, wait=True, launcher="torchrun", threads=1
):
    """Runs a command in 1 process, or in `world` processes under torchrun
    (or `accelerate launch`), each with `threads` intra-op threads."""
    launcher = launch.lit_plugins_command(world, launcher)
    args = [*launcher, command, f"--output_dir={out_dir}", f"--max_examples={N}", *flags]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    if not wait:
        return subprocess.Popen(
            args, cwd=demo_server.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    proc = subprocess.run(
        args, cwd=demo_server.ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _model_flags(checkpoints, *names):
    return [f"--models={','.join(f'{n}:{checkpoints[n]}' for n in names)}", f"--labels={LABELS}"]


ATTRIBUTE_FLAGS = (
    "--methods=grad_norm,grad_dot_input,integrated_gradients,layer_conductance",
    "--conductance_layer=1",
    "--ig_steps=16",
    "--shard_size=4",
    "--batch_size=3",
)


@pytest.fixture(scope="module")
def attribute_one(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("attr1")
    run_cli("attribute", out, *_model_flags(checkpoints, "tiny"), *ATTRIBUTE_FLAGS)
    return out


def test_attribute_rows_are_complete_and_match_the_interpreters(attribute_one, checkpoints):
    rows = attribute.read(str(attribute_one))
    assert rows["example"].tolist() == list(range(N))  # none lost, none duplicated
    assert (attribute_one / shards.COMPLETE).exists()
    examples = loaders.load_bundled_sentiment("dev", max_examples=N).examples
    assert rows["sentence"].tolist() == [ex["sentence"] for ex in examples]
    for method in ("grad_norm", "grad_dot_input", "integrated_gradients", "layer_conductance"):
        assert all(len(s) == len(t) for s, t in zip(rows[method], rows["tokens"]))
    # Completeness holds on every row: the scores sum to F(input) - F(baseline).
    for method in ("integrated_gradients", "layer_conductance"):
        sums = np.array([np.sum(s) for s in rows[method]])
        np.testing.assert_allclose(sums, rows[f"{method}_attribution_sum"], rtol=1e-5)
        assert (rows[f"{method}_completeness_error"] < 0.01).all()
        assert (rows[f"{method}_evaluations"] > 0).all()
    # The same numbers as the LIT interpreter on the same model and examples.
    from lit_plugins.lit.interpreters import gradient_salience
    from lit_plugins.lit.model import HFSequenceClassifier

    model = HFSequenceClassifier(checkpoints["tiny"], labels=LABELS.split(","))
    lit = gradient_salience.GradientDotInput().run(examples[:3], model, None)
    for i, result in enumerate(lit):
        (value,) = result.values()
        np.testing.assert_allclose(rows["grad_dot_input"][i], value.salience, rtol=1e-5, atol=1e-7)
        assert list(rows["tokens"][i]) == list(value.tokens)


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_attribute_two_processes_equal_one(attribute_one, checkpoints, tmp_path, launcher):
    flags = [*_model_flags(checkpoints, "tiny"), *ATTRIBUTE_FLAGS]
    proc = run_cli("attribute", tmp_path, *flags, world=2, launcher=launcher)
    assert "rank 1 of 2" in proc.stderr  # two ranks really ran
    one, two = attribute.read(str(attribute_one)), attribute.read(str(tmp_path))
    assert two["example"].tolist() == list(range(N))
    pd.testing.assert_frame_equal(one, two)


def test_finished_output_is_left_alone(attribute_one, checkpoints):
    before = {p: os.stat(attribute_one / p).st_mtime_ns for p in os.listdir(attribute_one)}
    proc = run_cli("attribute", attribute_one, *_model_flags(checkpoints, "tiny"), *ATTRIBUTE_FLAGS)
    assert "already complete; nothing to do" in proc.stdout
    after = {p: os.stat(attribute_one / p).st_mtime_ns for p in os.listdir(attribute_one)}
    assert after == before


def test_killed_run_resumes_to_the_uninterrupted_output(checkpoints, tmp_path):
    flags = [*_model_flags(checkpoints, "tiny"), *ATTRIBUTE_FLAGS[:-2], "--shard_size=1"]
    flags.append("--batch_size=1")
    killed, full = tmp_path / "killed", tmp_path / "full"
    written = lambda: [p for p in os.listdir(killed) if p.startswith("shard-")]
    proc = run_cli("attribute", killed, *flags, wait=False)
    deadline = time.time() + 300
    while not (killed.exists() and written()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no clean-up runs: what a crash or OOM kill leaves
    proc.wait()
    done = len(written())
    assert 0 < done < N, f"the kill came at {done} of {N} shards; the test needs a partial run"
    assert not (killed / shards.COMPLETE).exists()
    assert not [p for p in os.listdir(killed) if p.endswith(".tmp.parquet")]
    proc = run_cli("attribute", killed, *flags)
    assert f"Rank 0 wrote {N - done} shard(s)" in proc.stderr  # only the missing ones
    run_cli("attribute", full, *flags)
    resumed = attribute.read(str(killed))
    assert resumed["example"].tolist() == list(range(N))
    pd.testing.assert_frame_equal(resumed, attribute.read(str(full)))


def test_output_of_another_configuration_is_refused(attribute_one, checkpoints):
    flags = [*_model_flags(checkpoints, "tiny"), *ATTRIBUTE_FLAGS, "--ig_steps=32"]
    proc = run_cli("attribute", attribute_one, *flags, check=False)
    assert proc.returncode == 2
    assert "another run configuration (ig_steps: 16 there vs 32 now);" in proc.stderr


def test_checkpoint_replaced_at_the_same_path_is_refused(checkpoints, tmp_path):
    """run.json holds the weights' digest: new weights under the old path are
    refused (naming the file), not taken for the finished run; another
    --output_dir starts a new run with the new weights."""
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoints["tiny"], ckpt)
    flags = [f"--models=m:{ckpt}", f"--labels={LABELS}", "--methods=grad_norm", "--shard_size=4"]
    run_cli("attribute", tmp_path / "old", *flags)
    manifest = shards.read_manifest(str(tmp_path / "old"))
    assert "model.safetensors" in manifest["config"]["checkpoints"]["model"]["files"]
    # Another model of the same architecture, written over the old weights.
    shutil.copy(os.path.join(checkpoints["tinyref"], "model.safetensors"), ckpt)
    proc = run_cli("attribute", tmp_path / "old", *flags, check=False)
    assert proc.returncode == 2 and "already complete" not in proc.stdout
    assert "the model checkpoint's files differ from that run's (changed: model.safetensors)" in (
        proc.stderr
    )
    run_cli("attribute", tmp_path / "new", *flags)
    old = attribute.read(str(tmp_path / "old"))["grad_norm"]
    new = attribute.read(str(tmp_path / "new"))["grad_norm"]
    assert not all(np.allclose(a, b) for a, b in zip(old, new))  # really other weights


def test_unwritable_output_dir(checkpoints, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("attribute", blocker / "out", *_model_flags(checkpoints, "tiny"), check=False)
    assert proc.returncode == 2 and "is not writable" in proc.stderr


def test_txray_refuses_mismatched_models_before_work(checkpoints, tmp_path):
    flags = [*_model_flags(checkpoints, "tiny"), f"--reference_model=other:{checkpoints['other']}"]
    proc = run_cli("txray", tmp_path, *flags, "--layer=1", check=False)
    assert proc.returncode == 2
    assert "tokenizes differently" in proc.stderr or "hidden size" in proc.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith("shard-")]


TXRAY_FLAGS = ("--layer=2", "--shard_size=4", "--batch_size=3", "--mode=all", "--noreport")


def _close_masses(actual, expected, counts):
    """TX-Ray masses (sums of float32 activations) equal up to float32 rounding.

    An activation computed in another batch (padding) or with other threads
    differs by a few float32 eps *of the hidden states' scale*, not of the
    cell's sum: a cell holding one small activation (0.0257) was seen off by
    3.6e-7 (1.4e-5 relative).  So: rtol 1e-5 plus an atol of 1e-5 x the
    largest per-credit activation (~80 eps32 of that scale)."""
    scale = float(np.max(expected / np.maximum(counts, 1)))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def test_txray_two_processes_equal_one_and_the_in_lit_pass(checkpoints, tmp_path):
    flags = [
        *_model_flags(checkpoints, "tiny"),
        f"--reference_model=tinyref:{checkpoints['tinyref']}",
        *TXRAY_FLAGS,
    ]
    one, two, threads = tmp_path / "one", tmp_path / "two", tmp_path / "threads"
    run_cli("txray", one, *flags)
    run_cli("txray", two, *flags, world=2)
    # The default setup: 1 process at 2 threads vs torchrun's 1 thread per rank.
    run_cli("txray", threads, *flags, threads=2)
    for name in (saved_results.REFERENCE_FILE, saved_results.MODEL_FILE):
        a, names_a, _ = txray.NeuronFeatureAggregator.load(one / name)
        b, names_b, _ = txray.NeuronFeatureAggregator.load(two / name)
        c, names_c, _ = txray.NeuronFeatureAggregator.load(threads / name)
        assert names_a == names_b == names_c
        for x, y in zip(a.to_coo(), b.to_coo()):
            np.testing.assert_array_equal(x, y)  # shards fixed, same threads: bit-identical
        (r1, c1, m1, n1), (r3, c3, m3, n3) = a.to_coo(), c.to_coo()
        np.testing.assert_array_equal(np.stack([r1, c1, n1]), np.stack([r3, c3, n3]))
        # Other threads: float32 sums in another order (see _close_masses).
        _close_masses(m3, m1, n1)
    by_one = pd.read_csv(one / corpus_txray.SHIFT_FILE)
    pd.testing.assert_frame_equal(by_one, pd.read_csv(two / corpus_txray.SHIFT_FILE))
    by_threads = pd.read_csv(threads / corpus_txray.SHIFT_FILE)
    # The ranking does not move on rounding noise: the same top 20 (and all).
    assert by_threads["neuron"][:20].tolist() == by_one["neuron"][:20].tolist()
    assert by_threads["neuron"].tolist() == by_one["neuron"].tolist()
    for column in ("distance", "lower", "upper"):  # float64 of float32 sums: ~1e-6
        np.testing.assert_allclose(by_threads[column], by_one[column], rtol=1e-5, atol=1e-7)
    # The in-LIT path (one pass over all examples) gives the same aggregation.
    from lit_plugins.lit.model import HFSequenceClassifier

    model = HFSequenceClassifier(checkpoints["tiny"], labels=LABELS.split(","))
    ref = HFSequenceClassifier(checkpoints["tinyref"], labels=LABELS.split(","))
    examples = loaders.load_bundled_sentiment("dev", max_examples=N).examples
    agg_ref, agg_model, vocab = txray_inputs.aggregate_pair(
        model, ref, examples, 2, mode="all", record_units=True
    )
    loaded = saved_results.load_txray_results(str(one))
    assert loaded["feature_names"] == vocab.names
    for mine, theirs in ((loaded["reference"], agg_ref), (loaded["model"], agg_model)):
        r1, c1, m1, n1 = mine.to_coo()
        r2, c2, m2, n2 = theirs.to_coo()
        np.testing.assert_array_equal(np.stack([r1, c1, n1]), np.stack([r2, c2, n2]))
        # float32 activations of differently padded batches: equal to rounding.
        _close_masses(m1, m2, n1)
        # The bootstrap's per-sentence table is the one-pass table.
        u1, k1, m1, c1 = mine.units.arrays()
        u2, k2, m2, c2 = theirs.units.arrays()
        np.testing.assert_array_equal(np.stack([u1, k1, c1]), np.stack([u2, k2, c2]))
        _close_masses(m1, m2, c1)
    # Intervals (default 200 replicates, seed 0) and ranking: the interpreter's.
    in_lit = txray.compute_shift(agg_ref, agg_model, feature_names=vocab, replicates=200)
    expected = in_lit.to_dataframe()
    table = pd.read_csv(one / corpus_txray.SHIFT_FILE)
    assert table["neuron"].tolist() == expected["neuron"].tolist()
    for column in ("distance", "lower", "upper"):
        np.testing.assert_allclose(table[column], expected[column], atol=1e-6)
    assert (table["upper"] >= table["lower"]).all() and (table["lower"] < table["upper"]).any()
    summary = json.loads((one / corpus_txray.SUMMARY_FILE).read_text())
    assert summary["num_examples"] == N and summary["layer"] == 2
    assert summary["bootstrap"]["replicates"] == 200 and summary["bootstrap"]["units"] == N
    top = summary["most_shifted"][0]
    assert top["neuron"] == table["neuron"][0] and top["lower"] == pytest.approx(table["lower"][0])


PROBE_FLAGS = ("--batch_size=4", "--held_out_fraction=0.3")


@pytest.fixture(scope="module")
def probe_one(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe1")
    run_cli("probe", out, *_model_flags(checkpoints, "tiny"), *PROBE_FLAGS)
    return out


def test_probe_two_processes_equal_one(probe_one, checkpoints, tmp_path):
    from lit_plugins.probing import persistence

    run_cli("probe", tmp_path, *_model_flags(checkpoints, "tiny"), *PROBE_FLAGS, world=2)
    one = json.loads((probe_one / "probe.json").read_text())
    two = json.loads((tmp_path / "probe.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["scores"] == two["scores"] and one["best_layer"] == two["best_layer"]
    assert one["num_rows"] == two["num_rows"] == N
    a = persistence.load_sweep(probe_one / "sweep.npz")
    b = persistence.load_sweep(tmp_path / "sweep.npz")
    for l in a.layers_:
        w = a.probes_[l].weight_
        np.testing.assert_allclose(b.probes_[l].weight_, w, atol=1e-4 * np.abs(w).max())
        np.testing.assert_allclose(b.probes_[l].bias_, a.probes_[l].bias_, atol=1e-4)


def test_probe_resumes_from_its_row_shards(probe_one, checkpoints, tmp_path):
    """A run that lost a shard (as if killed while collecting it) recomputes
    only that shard and fits the same probe; a finished run does nothing."""
    import shutil

    from lit_plugins.cli import probe as corpus_probe

    out = tmp_path / "probe"
    shutil.copytree(probe_one, out)
    shard_files = sorted(p for p in os.listdir(out) if p.endswith(corpus_probe.ROWS_SUFFIX))
    assert len(shard_files) == -(-N // shards.auto_shard_size(N))
    for name in (shard_files[1], shards.COMPLETE, saved_results.SWEEP_FILE, "probe.json"):
        os.remove(out / name)
    before = {p: os.stat(out / p).st_mtime_ns for p in shard_files if p != shard_files[1]}
    proc = run_cli("probe", out, *_model_flags(checkpoints, "tiny"), *PROBE_FLAGS)
    assert "already complete" not in proc.stdout
    assert {p: os.stat(out / p).st_mtime_ns for p in before} == before  # only the lost one
    assert (out / shard_files[1]).exists() and (out / shards.COMPLETE).exists()
    one = json.loads((probe_one / "probe.json").read_text())
    again = json.loads((out / "probe.json").read_text())
    assert again["scores"] == one["scores"] and again["neurons"] == one["neurons"]
    proc = run_cli("probe", out, *_model_flags(checkpoints, "tiny"), *PROBE_FLAGS)
    assert "already complete; nothing to do" in proc.stdout


def test_probe_equals_the_interpreter_fit(probe_one, checkpoints):
    """The CLI's sweep is the Linear Probe interpreter's fit on the same data."""
    from lit_plugins.lit.interpreters import linear_probe
    from lit_plugins.lit.model import HFSequenceClassifier

    model = HFSequenceClassifier(checkpoints["tiny"], labels=LABELS.split(","))
    dataset = loaders.load_bundled_sentiment("dev", max_examples=N)
    interp = linear_probe.LinearProbeInterpreter(held_out_fraction=0.3)
    state = interp.fit(model, dataset)
    _, fit, loaded = saved_results.load_probe_results(str(probe_one))
    assert fit == interp.parse_config(model, dataset, {}).fit
    assert loaded.scores == pytest.approx(state.scores, abs=1e-12)
    for l in state.layers:
        w = state.sweep.probes_[l].weight_
        np.testing.assert_allclose(loaded.sweep.probes_[l].weight_, w, atol=1e-4 * np.abs(w).max())


def test_results_load_into_the_lit_ui(probe_one, checkpoints, tmp_path):
    """`./run demo --probe_results=... --txray_results=...`: the interpreters
    show the corpus fits (over LIT's HTTP API) without fitting on the UI's data."""
    from lit_plugins.app import registration
    from lit_plugins.lit.interpreters import common, linear_probe, neuron_use, txray_shift

    txray_out = tmp_path / "txray"
    ref_flag = f"--reference_model=tinyref:{checkpoints['tinyref']}"
    run_cli("txray", txray_out, *_model_flags(checkpoints, "tiny"), ref_flag, *TXRAY_FLAGS)
    args = [
        *_model_flags(checkpoints, "tiny"),
        ref_flag,
        f"--probe_results={probe_one}",
        f"--txray_results={txray_out}",
    ]
    log = tmp_path / "server.log"
    with demo_server.demo_server(log, max_examples=4, extra_args=args) as (port, _, _):
        data = demo_server.post(port, "get_dataset", {"dataset_name": "sentiment-dev"})
        (probe_result,) = demo_server.interpret(
            port,
            registration.LINEAR_PROBE,
            data[:1],
            {neuron_use.USE_KEY: False},
            model="tiny",
        )
        sweep = common.chips_dict(probe_result[linear_probe.LAYER_SWEEP])
        scores = json.loads((probe_one / "probe.json").read_text())["scores"]
        assert [round(v, 12) for v in sweep.values()] == [round(v, 12) for v in scores.values()]
        (txray_result,) = demo_server.interpret(
            port,
            registration.TXRAY_SHIFT,
            data[:1],
            {txray_shift.LAYER_KEY: 2, txray_shift.MODE_KEY: "all", neuron_use.USE_KEY: False},
            model="tiny",
        )
        chips = txray_result[txray_shift.SHIFTED_NEURONS]
        shifted = common.chips_dict(chips)
        table = pd.read_csv(txray_out / corpus_txray.SHIFT_FILE)
        # The corpus table's order (by the bootstrap's lower bound) and intervals.
        np.testing.assert_allclose(
            list(shifted.values()), table["distance"].to_numpy()[:10], rtol=1e-9
        )
        for text, (_, row) in zip(chips["tokens"], table.head(10).iterrows()):
            assert text.startswith(f"L2 n{int(row['neuron'])}:")
            assert f"[{row['lower']:.2f}, {row['upper']:.2f}], support" in text
    text = log.read_text()
    assert "Linear probe: loaded" in text and "TX-Ray: loaded" in text
    assert "Linear probe: done" not in text and "TX-Ray: done" not in text  # no refit


@pytest.fixture(scope="module")
def tagged_jsonl(tmp_path_factory):
    """The bundled sentences with a per-word tag (LONG: over 4 characters)."""
    path = tmp_path_factory.mktemp("tagged") / "tagged.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for ex in loaders.load_bundled_sentiment("dev", max_examples=N).examples:
            words = ex["sentence"].split()
            tags = ["LONG" if len(w) > 4 else "SHORT" for w in words]
            f.write(json.dumps({"sentence": ex["sentence"], "label": ex["label"], "tags": tags}))
            f.write("\n")
    return path


def test_token_level_probe_two_processes_equal_one(checkpoints, tagged_jsonl, tmp_path):
    """--tags_columns: a word-level probe (SequenceTags), rows = words."""
    from lit_plugins.probing import persistence

    flags = [
        *_model_flags(checkpoints, "tiny"),
        f"--dataset={tagged_jsonl}",
        "--tags_columns=tags",
        "--label_field=tags",
        "--pooling=first",
        *PROBE_FLAGS,
    ]
    run_cli("probe", tmp_path / "one", *flags)
    run_cli("probe", tmp_path / "two", *flags, world=2)
    one = json.loads((tmp_path / "one" / "probe.json").read_text())
    two = json.loads((tmp_path / "two" / "probe.json").read_text())
    assert one["fit_options"]["level"] == "token"
    words = sum(len(json.loads(line)["tags"]) for line in tagged_jsonl.read_text().splitlines())
    assert one["num_rows"] == two["num_rows"] and 0 < one["num_rows"] <= words
    assert one["scores"] == two["scores"]
    a = persistence.load_sweep(tmp_path / "one" / "sweep.npz")
    b = persistence.load_sweep(tmp_path / "two" / "sweep.npz")
    for l in a.layers_:
        w = a.probes_[l].weight_
        np.testing.assert_allclose(b.probes_[l].weight_, w, atol=1e-4 * np.abs(w).max())
