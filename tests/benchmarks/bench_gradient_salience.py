"""Overhead of GradientNorm / GradientDotInput over the model's own
predict-with-gradients, on the fine-tuned MiniLM and the bundled dev set.

  .venv/bin/python -m tests.benchmarks.bench_gradient_salience
"""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from lit_nlp.components import gradient_maps

from lit_plugins.data import loaders
from lit_plugins.lit import demo_models, interpreters
from tests.benchmarks import machine


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    machine.print_header()
    model = demo_models.finetuned_minilm(batch_size=32)
    checkpoint = machine.checkpoint(demo_models.finetuned_checkpoint())
    print(f"Model: fine-tuned MiniLM-L6 ({checkpoint})")
    examples = loaders.load_bundled_sentiment("dev").examples
    outputs = list(model.predict(examples))
    predict = best_of(lambda: list(model.predict(examples)))
    print(f"{len(examples)} dev sentences; model predict with gradients: {predict:.2f}s\n")
    print("| interpreter | interpreter time (s) | overhead over predict |")
    print("|---|---|---|")
    for name, interp in [
        ("lit-plugins GradientNorm", interpreters.GradientNorm()),
        ("lit-plugins GradientDotInput", interpreters.GradientDotInput()),
        ("LIT GradientNorm", gradient_maps.GradientNorm()),
        ("LIT GradientDotInput", gradient_maps.GradientDotInput()),
    ]:
        t = best_of(lambda: interp.run(examples, model, None, outputs))
        print(f"| {name} | {t:.4f} | {t / predict:.2%} |")


if __name__ == "__main__":
    main()
