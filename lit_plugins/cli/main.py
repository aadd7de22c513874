"""``python -m lit_plugins <command> [--flags]`` (also ``lit-plugins <command>``): the one
entry point of the command line.

Every command takes absl flags from one namespace (`cli.flags`, `cli.model_data`);
``--help`` lists the commands, ``<command> --help`` the flags that command takes, and
both exit 0.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

from absl import app
from absl import flags as absl_flags

PROG = "python -m lit_plugins"
# name -> (module with `main(argv)` and `FLAGS_USED`, one line of help)
COMMANDS = {
    "probe": (
        "lit_plugins.cli.corpus",
        "linear-probe layer sweep over a corpus (sweep.npz, probe.json), loadable in LIT",
    ),
    "txray": (
        "lit_plugins.cli.corpus",
        "TX-Ray: two models' neuron-feature aggregations over a corpus, their shift, plots",
    ),
    "attribute": (
        "lit_plugins.cli.corpus",
        "salience maps per example (gradient maps, IG, layer conductance) to Parquet shards",
    ),
    "faithfulness": (
        "lit_plugins.cli.faithfulness_report",
        "faithfulness of every salience method: tables (CSV, Markdown) and curve plots",
    ),
    "trust-report": (
        "lit_plugins.cli.trust_report",
        "trust checks of every salience method (randomization, robustness, plausibility)",
    ),
    "txray-report": (
        "lit_plugins.cli.txray_report",
        "TX-Ray plots and tables from two saved aggregations (or a synthetic demo)",
    ),
}
HELP_ARGS = ("--help", "-h", "--helpfull", "help")


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"usage: {PROG} <command> [--flags]", "", "commands:"]
    lines += [f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items()]
    lines += [
        "",
        f"`{PROG} <command> --help` lists the flags of one command.",
        "Data-parallel: torchrun --nproc_per_node=N -m lit_plugins <command> ... "
        "(probe, txray, attribute).",
    ]
    return "\n".join(lines)


def command_help(command: str) -> str:
    module_name, line = COMMANDS[command]
    module = importlib.import_module(module_name)
    lines = [f"usage: {PROG} {command} [--flags]", "", line, "", "flags:"]
    for name in module.flags_used(command):
        flag = absl_flags.FLAGS[name]
        lines.append(f"  --{name}: {flag.help}")
        lines.append(f"    (default: {flag.default_as_str or 'none'})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatches ``argv[1:]`` (default: sys.argv) to its command; returns the exit code."""
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    if not args or args[0] in HELP_ARGS:
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"{PROG}: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if any(a in HELP_ARGS for a in rest):
        print(command_help(command))
        return 0
    module = importlib.import_module(COMMANDS[command][0])
    codes = []

    def run_command(parsed: Sequence[str]) -> None:
        codes.append(module.main([command, *parsed[2:]]))

    # Every call starts from the defaults (a second call in one process, e.g. from a
    # notebook or a test, must not inherit the first call's flags).
    absl_flags.FLAGS.unparse_flags()
    try:
        app.run(run_command, argv=[argv[0], command, *rest])
    except SystemExit as e:  # absl exits after main; keep the command's code
        if e.code not in (None, 0):
            return int(e.code) if isinstance(e.code, int) else 1
    return codes[0] if codes else 0


def run() -> None:
    """Console-script entry point (``lit-plugins <command> ...``)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A rank of a launched world has left its process group and closed its
        # outputs by now. Interpreter finalization can still abort it: gloo's
        # worker threads are destroyed while joinable ("terminate called without
        # an active exception", SIGABRT; pytorch/pytorch#179291), which turns a
        # finished run into a failed one. Flush and leave without finalization.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
