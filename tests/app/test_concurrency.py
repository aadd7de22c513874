"""Concurrency and load.

1. Over HTTP: 8 client threads x 20 requests to one demo server
   (--max_examples=8), spread over every 'lit-plugins:' interpreter (each
   at least 16 times; small configs, faithfulness on one seeded method): no
   request fails, every answer equals the serial answer, the probe and
   TX-Ray fit once, and the server's RSS stays bounded.
   Note: LIT's default dev server is werkzeug's run_simple with
   threaded=False, so the demo answers requests one at a time; this part
   checks queueing, caches and determinism under parallel clients.
2. In process: the same interpreters called from 8 threads on one model
   (what a threaded WSGI server or a notebook does). This exercises
   HFSequenceClassifier.inference_lock: HF fast tokenizers and layer IG's
   forward hook are shared state.
"""

import concurrent.futures
import threading
import time

import numpy as np
import pytest
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types

from lit_plugins.app import registration
from tests.kit import tiny_models
from tests.kit.demo_server import count_in_log, demo_server, interpret, post

OUR_PREFIX = "lit-plugins:"
DATASET = "sentiment-dev"
MODEL = "minilm-finetuned"
THREADS, PER_THREAD = 8, 20
# A hang guard, not a speed claim: generous enough for a machine under load.
DEADLINE_S = 600
CONFIGS = {  # small fixed configs; probe/TX-Ray: defaults, so they fit once
    registration.INTEGRATED_GRADIENTS: {"Interpolation steps": 8},
    registration.LAYER_CONDUCTANCE: {"Interpolation steps": 8},
    registration.NEURON_CONDUCTANCE: {"Interpolation steps": 8},
}


def _faithfulness_config(info) -> dict:
    """Salience Faithfulness on our gradient norm only: LIT's LIME is unseeded
    (its answers could not equal the serial ones) and the others are slow."""
    spec = info["interpreters"][registration.SALIENCE_FAITHFULNESS]["configSpec"]
    prefix = "Score method: "
    return {k: k == prefix + registration.GRADIENT_NORM for k in spec if k.startswith(prefix)}


FIT_LINES = {
    registration.LINEAR_PROBE: r"Linear probe: done in",
    registration.TXRAY_SHIFT: r"TX-Ray: done in",
}
RSS_BOUND_KB = int(1.5 * 1024 * 1024)


def _rss_kb(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def assert_same(a, b, path="result"):
    """Equal JSON-like results, numbers within 1e-6."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and a and all(isinstance(x, (int, float)) for x in a):
        np.testing.assert_allclose(
            np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-6, err_msg=path
        )
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-6), path
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    del minilm_finetuned  # makes sure the fine-tuned checkpoint is cached
    log = tmp_path_factory.mktemp("concurrency_server") / "server.log"
    with demo_server(log) as srv:
        yield srv


def test_parallel_clients_get_serial_answers(server):
    port, log_path, pid = server
    info = post(port, "get_info")
    ours = sorted(n for n in info["models"][MODEL]["interpreters"] if n.startswith(OUR_PREFIX))
    assert set(ours) >= {
        registration.GRADIENT_NORM,
        registration.GRADIENT_DOT_INPUT,
        registration.INTEGRATED_GRADIENTS,
        registration.LINEAR_PROBE,
        registration.TXRAY_SHIFT,
    }
    data = post(port, "get_dataset", {"dataset_name": DATASET})
    assert len(data) == 8
    configs = {**CONFIGS, registration.SALIENCE_FAITHFULNESS: _faithfulness_config(info)}

    # Serial reference answers, one per (interpreter, datapoint).
    serial = {}
    for name in ours:
        for i, ex in enumerate(data):
            (serial[name, i],) = interpret(port, name, [ex], configs.get(name))
    fits = {n: count_in_log(log_path, p) for n, p in FIT_LINES.items()}
    assert fits == dict.fromkeys(FIT_LINES, 1), fits
    rss_before = _rss_kb(pid)

    jobs = [
        (ours[(t * PER_THREAD + j) % len(ours)], (t + j) % len(data))
        for t in range(THREADS)
        for j in range(PER_THREAD)
    ]
    per_interp = {n: sum(1 for j in jobs if j[0] == n) for n in ours}
    assert min(per_interp.values()) >= THREADS * 2, per_interp

    def client(t):
        out = []
        for name, i in jobs[t * PER_THREAD : (t + 1) * PER_THREAD]:
            (res,) = interpret(
                port,
                name,
                [data[i]],
                configs.get(name),
            )
            out.append(((name, i), res))
        return out

    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(client, t) for t in range(THREADS)]
        done, not_done = concurrent.futures.wait(futures, timeout=DEADLINE_S)
        assert not not_done, f"{len(not_done)} clients missed the deadline"
        answers = [a for f in done for a in f.result()]  # re-raises failures
    elapsed = time.time() - start
    assert len(answers) == THREADS * PER_THREAD
    for key, res in answers:
        assert_same(serial[key], res, f"{key}")

    assert {n: count_in_log(log_path, p) for n, p in FIT_LINES.items()} == fits
    grown = _rss_kb(pid) - rss_before
    assert grown < RSS_BOUND_KB, f"server RSS grew by {grown} kB"
    print(f"{len(answers)} parallel requests in {elapsed:.1f} s; RSS +{grown / 1024:.0f} MiB")


# ------------------------------------------------------------ in process --
LABELS = ["neg", "pos"]
WORDS = tiny_models.WORDS


def _examples(n=24, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 30))))
        out.append(
            {"sentence": " ".join(words) + (" great" if i % 2 else ""), "label": LABELS[i % 2]}
        )
    return out


def test_threads_on_one_model_get_serial_answers():
    from lit_plugins.lit import interpreters as ours
    from lit_plugins.lit.interpreters import integrated_gradients as ig
    from lit_plugins.lit.interpreters import linear_probe as lp
    from lit_plugins.lit.interpreters import txray_shift

    def wrap(seed):
        return tiny_models.classifier("bert", seed=seed, labels=LABELS, batch_size=4, max_length=16)

    models = {"a": wrap(0), "b": wrap(1)}
    model = models["b"]
    examples = _examples()
    ds = lit_dataset.Dataset(
        spec={"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)},
        examples=examples,
    )
    tasks = {
        "norm": (ours.GradientNorm(), {}),
        "dot": (ours.GradientDotInput(), {"Class to explain": "neg"}),
        "ig": (ig.IntegratedGradients(), {"Interpolation steps": 6}),
        "ig_layer": (
            ig.IntegratedGradients(),
            {"Interpolation steps": 6, ig.TARGET_LAYER_KEY: "layer 1", ig.BATCH_KEY: 5},
        ),
        "probe": (lp.LinearProbeInterpreter(batch_size=5), {}),
        "txray": (txray_shift.TXRayNeuronShift(models, default_reference="a", batch_size=5), {}),
    }

    def run(name, idx):
        interp, config = tasks[name]
        batch = [examples[i] for i in idx]
        return interp.run(batch, model, ds, config=config)

    jobs = [
        (name, [(k + t) % len(examples), (3 * k + t) % len(examples)])
        for t in range(8)
        for k, name in enumerate(sorted(tasks) * 3)
    ]
    serial = [run(name, idx) for name, idx in jobs]
    barrier = threading.Barrier(8)

    def worker(t):
        barrier.wait(timeout=30)
        return [(j, run(*jobs[j])) for j in range(t, len(jobs), 8)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(worker, t) for t in range(8)]
        done, not_done = concurrent.futures.wait(futures, timeout=120)
        assert not not_done
        results = [r for f in done for r in f.result()]
    assert len(results) == len(jobs)
    for j, got in results:
        for want_ex, got_ex in zip(serial[j], got):
            assert want_ex.keys() == got_ex.keys()
            for key in want_ex:
                w, g = want_ex[key], got_ex[key]
                if hasattr(w, "tokens"):
                    assert list(w.tokens) == list(g.tokens)
                ws, gs = w.salience, g.salience
                if isinstance(ws, dict):
                    assert ws.keys() == gs.keys(), (jobs[j], key)
                    ws, gs = list(ws.values()), list(gs.values())
                np.testing.assert_allclose(
                    np.asarray(gs, float),
                    np.asarray(ws, float),
                    rtol=1e-5,
                    atol=1e-6,
                    err_msg=f"{jobs[j]} {key}",
                )
    assert tasks["probe"][0].fit_count == 1
    assert tasks["txray"][0].fit_count == 1
