"""The corpus commands: ``python -m lit_plugins probe|txray|attribute``.

Dataset-level runs of the interpreters' own code over a whole corpus, with the
demo's model and data flags (--models, --dataset, --text_fields, --label_column,
--max_examples, --batch_size, ...; `cli.model_data`) and their own (`cli.flags`).
Data-parallel under torch.distributed (one process per rank, each on its own part
of the data):

  torchrun --nproc_per_node=2 -m lit_plugins attribute --output_dir=out ...
  accelerate launch --multi_gpu --num_processes=2 -m lit_plugins attribute ...

All three are resumable: rerun the same command after an interruption and only the
missing shards are computed (probe: its rows; the fit, a small part of the time, runs
again); on a finished output directory the command does nothing. The run's identity
(`run_config`) holds every flag its output depends on, the data's digest and the
checkpoints' digests.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time
from collections.abc import Sequence

from absl import app, logging

from lit_plugins.cli import flags as cli_flags
from lit_plugins.cli import model_data, shards
from lit_plugins.txray import options as txray_options
from lit_plugins.util import digest, distributed

_COMMAND_FLAGS = {
    "attribute": (
        "methods",
        "class_to_explain",
        "normalize",
        "ig_steps",
        "ig_rule",
        "ig_baseline",
        "ig_tolerance",
        "ig_max_steps",
        "conductance_layer",
        "shard_size",
    ),
    "txray": (
        "layer",
        "mode",
        "features",
        "tags_field",
        "normalize_distance",
        "shard_size",
        "replicates",
        "seed",
        "confidence",
    ),
    "probe": (
        "label_field",
        "layers",
        "pooling",
        "lambda_l1",
        "lambda_l2",
        "held_out_fraction",
        "seed",
        "shard_size",
    ),
}
COMMANDS = tuple(_COMMAND_FLAGS)
# Flags that only shape the summary written at the end, left out of the run's identity so
# that changing them does not discard the shards: to apply a new value, use a new
# --output_dir (or `txray-report` on the saved aggregations).
_SUMMARY_FLAGS = {"attribute": (), "probe": ("top_mass",), "txray": ("top_k", "report")}


def flags_used(command: str) -> tuple[str, ...]:
    """Every flag `command` reads, for its --help."""
    return (
        "output_dir",
        "model",
        *model_data.MODEL_DATA_FLAGS,
        "batch_size",
        "device",
        *_COMMAND_FLAGS[command],
        *_SUMMARY_FLAGS[command],
    )


def data_digest(path: str | None) -> str:
    """What identifies the data without loading it: a file's sha256, a
    directory's file names and sizes, or the hub name / bundled split."""
    if not path:
        return "bundled:dev"
    if os.path.isfile(path):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return "sha256:" + digest.hexdigest()
    if os.path.isdir(path):
        entries = sorted(
            (os.path.relpath(os.path.join(root, n), path), os.path.getsize(os.path.join(root, n)))
            for root, _, names in os.walk(path)
            for n in names
        )
        return "dir:" + hashlib.sha256(repr(entries).encode()).hexdigest()
    return "name:" + path


def run_config(command: str) -> dict:
    """The run's configuration: every flag its output depends on, the data's
    digest and the digests of the checkpoints it runs (`checkpoint_digests`)."""
    names = model_data.MODEL_DATA_FLAGS + _COMMAND_FLAGS[command] + ("model",)
    config = {"command": command, **model_data.flag_values(names)}
    config["data"] = data_digest(model_data.DATASET.value)
    config[shards.CHECKPOINTS_KEY] = checkpoint_digests(command)
    return config


def _model_path() -> str:
    """Where --model's checkpoint is (the default models': the embedded
    MiniLM, the cached fine-tune -- trained here on a first run, as loading
    it would)."""
    if not model_data.MODELS.value:
        from lit_plugins.hf import finetune  # pylint: disable=g-import-not-at-top
        from lit_plugins.lit import demo_models  # pylint: disable=g-import-not-at-top

        if cli_flags.MODEL.value == model_data.DEFAULT_REFERENCE:
            return finetune.default_model_dir()
        if cli_flags.MODEL.value in (None, model_data.DEFAULT_MODEL):
            return demo_models.finetuned_checkpoint()
        return ""  # an unknown name: refused when the model is loaded
    named = dict(model_data.name_and_path(s) for s in model_data.MODELS.value)
    return named.get(cli_flags.MODEL.value or next(iter(named)), "")


def _reference_path() -> str | None:
    if model_data.REFERENCE_MODEL.value:
        return model_data.name_and_path(model_data.REFERENCE_MODEL.value)[1]
    if not model_data.MODELS.value:
        from lit_plugins.hf import finetune  # pylint: disable=g-import-not-at-top

        return finetune.default_model_dir()
    return None  # refused when the reference is loaded


def checkpoint_digests(command: str) -> dict:
    """{"model": …, "reference": …} (reference: txray only): each checkpoint's
    `digest.checkpoint_digest` (sha256 of its weights, config and tokenizer
    files), so a checkpoint replaced at the same path is another run."""
    roles = {"model": _model_path()}
    if command == "txray":
        roles["reference"] = _reference_path()
    return {
        role: None if not path else digest.checkpoint_digest(path) for role, path in roles.items()
    }


def _device(comm: distributed.Comm) -> str:
    """--device, or this rank's GPU under a multi-GPU launch."""
    device = model_data.DEVICE.value
    if device == "auto" and comm.device.type == "cuda":
        return str(comm.device)
    return device


def one_model(comm: distributed.Comm):
    """(name, model) of --model among --models (only that one is loaded)."""
    specs_ = model_data.MODELS.value
    if not specs_:
        from lit_plugins.lit import demo_models  # pylint: disable=g-import-not-at-top

        kw = model_data.model_kwargs(_device(comm))
        if cli_flags.MODEL.value in (None, model_data.DEFAULT_MODEL):
            return model_data.DEFAULT_MODEL, demo_models.finetuned_minilm(**kw)
        if cli_flags.MODEL.value == model_data.DEFAULT_REFERENCE:
            return cli_flags.MODEL.value, demo_models.pretrained_minilm(**kw)
        raise ValueError(
            f"--model={cli_flags.MODEL.value!r} is not one of the default models "
            f"[{model_data.DEFAULT_MODEL!r}, {model_data.DEFAULT_REFERENCE!r}]."
        )
    named = dict(model_data.name_and_path(s) for s in specs_)
    name = cli_flags.MODEL.value or next(iter(named))
    if name not in named:
        raise ValueError(f"--model={name!r} is not in --models (names: {sorted(named)}).")
    return name, model_data.load_model(name, named[name], device=_device(comm))


def _reference(comm: distributed.Comm, model_name: str):
    """TX-Ray's reference: --reference_model, else the other default model."""
    reference = model_data.load_reference({model_name: None}, device=_device(comm))
    if reference is not None:
        return reference
    if not model_data.MODELS.value:
        from lit_plugins.lit import demo_models  # pylint: disable=g-import-not-at-top

        return model_data.DEFAULT_REFERENCE, demo_models.pretrained_minilm(
            **model_data.model_kwargs(_device(comm))
        )
    raise ValueError(
        "txray needs --reference_model (e.g. the pre-trained checkpoint the model was "
        "fine-tuned from)."
    )


def dataset_of(model):
    ((name, dataset),) = model_data.load_dataset({"model": model}).items()
    logging.info("Dataset %r: %d examples", name, len(dataset))
    return dataset


def _text_columns(dataset) -> list[str]:
    return [k for k in dataset.spec() if not k.startswith("_")]


def _shard_size(examples) -> int:
    if cli_flags.SHARD_SIZE.value < 0:
        raise ValueError(f"--shard_size must be >= 0 (0 = auto), got {cli_flags.SHARD_SIZE.value}.")
    return cli_flags.SHARD_SIZE.value or shards.auto_shard_size(len(examples))


def _finished(out_dir: str, config: dict, comm: distributed.Comm) -> bool:
    if shards.is_complete(out_dir, config):
        if comm.is_main:
            print(f"{out_dir}: this run is already complete; nothing to do.", flush=True)
        return True
    return False


def _begin(command: str, comm: distributed.Comm, **config_extra):
    """(out_dir, config, model name, model, dataset) of a run to do, or None when
    --output_dir already holds it finished. `config_extra` joins the run's identity."""
    out_dir, config = cli_flags.OUTPUT_DIR.value, run_config(command)
    config.update(config_extra)
    if _finished(out_dir, config, comm):
        return None
    shards.check_output_dir(out_dir, comm)
    name, model = one_model(comm)
    return out_dir, config, name, model, dataset_of(model)


def cmd_attribute(comm: distributed.Comm) -> None:
    from lit_plugins.cli import attribute  # pylint: disable=g-import-not-at-top

    opts = attribute.AttributeOptions(
        methods=tuple(cli_flags.METHODS.value),
        class_to_explain=cli_flags.CLASS_TO_EXPLAIN.value,
        normalize=cli_flags.NORMALIZE.value,
        steps=cli_flags.IG_STEPS.value,
        rule=cli_flags.IG_RULE.value,
        baseline=cli_flags.IG_BASELINE.value,
        tolerance=cli_flags.IG_TOLERANCE.value,
        max_steps=cli_flags.IG_MAX_STEPS.value,
        conductance_layer=cli_flags.CONDUCTANCE_LAYER.value,
    )
    run = _begin("attribute", comm)
    if run is None:
        return
    out_dir, config, name, model, dataset = run
    attribute.check_model(model, opts)
    examples = list(dataset.examples)
    plan = shards.ShardPlan(out_dir, config, len(examples), _shard_size(examples), ".parquet")
    plan.prepare(comm)
    written = attribute.run(
        model,
        examples,
        plan,
        opts,
        columns=_text_columns(dataset),
        batch_size=model_data.BATCH_SIZE.value,
        comm=comm,
    )
    logging.info("Rank %d wrote %d shard(s).", comm.rank, written)
    if plan.finish(comm) and comm.is_main:
        print(f"attribute: {len(examples)} examples of {name!r} in {out_dir}", flush=True)


def cmd_txray(comm: distributed.Comm) -> None:
    from lit_plugins.cli import txray  # pylint: disable=g-import-not-at-top

    opts = txray_options.TXRaySettings(
        layer=cli_flags.LAYER.value,
        mode=cli_flags.MODE.value,
        features=cli_flags.FEATURES.value,
        tags_field=cli_flags.TAGS_FIELD.value,
        normalize=cli_flags.NORMALIZE_DISTANCE.value,
        top_k=cli_flags.TOP_K.value,
        replicates=cli_flags.REPLICATES.value,
        seed=cli_flags.SEED.value,
        confidence=cli_flags.CONFIDENCE.value,
    )
    run = _begin(
        "txray",
        comm,
        reference_model=model_data.REFERENCE_MODEL.value or model_data.DEFAULT_REFERENCE,
    )
    if run is None:
        return
    out_dir, config, name, model, dataset = run
    ref_name, reference = _reference(comm, name)
    examples = list(dataset.examples)
    opts = txray.resolve(model, reference, ref_name, examples, opts)
    plan = shards.ShardPlan(
        out_dir, config, len(examples), _shard_size(examples), txray.SHARD_SUFFIX
    )
    plan.prepare(comm)
    txray.run(
        model,
        reference,
        (ref_name, name),
        examples,
        plan,
        opts,
        batch_size=model_data.BATCH_SIZE.value,
        comm=comm,
    )

    def write_results():
        result = txray.write_results(plan, (ref_name, name), opts, report=cli_flags.REPORT.value)
        print(
            f"txray: {ref_name!r} -> {name!r}, layer {opts.layer}, {result.num_shared} "
            f"neurons active in both, results in {out_dir}",
            flush=True,
        )

    plan.finish(comm, then=write_results)


def _probe_layer(value: str) -> int | None:
    """--layers: 'sweep' (None: every layer) or one layer index."""
    if value.strip().lower() in ("", "sweep"):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--layers must be 'sweep' or a layer index, got {value!r}.") from None


def cmd_probe(comm: distributed.Comm) -> None:
    from lit_plugins import probing  # pylint: disable=g-import-not-at-top
    from lit_plugins.cli import probe  # pylint: disable=g-import-not-at-top

    opts = probing.ProbeSettings(
        label_field=cli_flags.LABEL_FIELD.value,
        layer=_probe_layer(cli_flags.LAYERS.value),
        pooling=cli_flags.POOLING.value,
        lambda_l1=cli_flags.LAMBDA_L1.value,
        lambda_l2=cli_flags.LAMBDA_L2.value,
        held_out_fraction=cli_flags.HELD_OUT.value,
        seed=cli_flags.SEED.value,
        top_mass=cli_flags.TOP_MASS.value,
    )
    run = _begin("probe", comm)
    if run is None:
        return
    out_dir, config, name, model, dataset = run
    probe.parse(model, dataset, opts)  # bad options: an error before any work
    state = probe.run(
        model,
        name,
        dataset,
        opts,
        out_dir,
        config,
        shard_size=_shard_size(dataset.examples),
        batch_size=model_data.BATCH_SIZE.value,
        comm=comm,
        device=_device(comm),
    )
    if comm.is_main:
        print(
            f"probe: {state.label_field!r} on {name!r}: held-out {state.metric} "
            f"{ {l: round(s, 4) for l, s in state.scores.items()} }, best layer "
            f"{state.best_layer}; results in {out_dir}",
            flush=True,
        )


RUNNERS = {"attribute": cmd_attribute, "txray": cmd_txray, "probe": cmd_probe}


def main(argv: Sequence[str]) -> int:
    """Runs one corpus command (argv[0]: its name; flags already parsed)."""
    command = argv[0]
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
    if not cli_flags.OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required.")
    comm = distributed.Comm.from_env()
    start = time.time()
    finished = False
    try:
        RUNNERS[command](comm)
        finished = True
    except ValueError as e:
        print(f"lit_plugins {command}: error: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        comm.close(wait_for_peers=finished)
    # ru_maxrss is in KiB on Linux: this process's peak resident memory.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"lit_plugins {command}: rank {comm.rank} of {comm.world_size}: "
        f"{time.time() - start:.1f} s, peak memory {peak:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return 0
