"""`python -m lit_plugins` / `lit-plugins`: one entry point whose --help lists the commands."""

import os
import subprocess
import sys

import pytest

from lit_plugins.cli import main as cli_main

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=ENV)


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "lit_plugins", "--help"],
        [os.path.join(os.path.dirname(sys.executable), "lit-plugins"), "--help"],
        [sys.executable, "-m", "lit_plugins", "-h"],
    ],
)
def test_help_lists_every_command_and_exits_0(argv):
    proc = _run(*argv)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert listed == ["probe", "txray", "attribute", "faithfulness", "trust-report", "txray-report"]


@pytest.mark.parametrize(
    "command, flag",
    [
        ("probe", "--lambda_l1"),
        ("txray", "--replicates"),
        ("attribute", "--ig_steps"),
        ("faithfulness", "--salience_methods"),
        ("trust-report", "--sanity_threshold"),
        ("txray-report", "--reference_file"),
    ],
)
def test_command_help_lists_its_flags(command, flag, capsys):
    assert cli_main.main(["lit_plugins", command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"{flag}:" in out and "--output_dir:" in out
    if command != "txray-report":  # models and data as the demo takes them
        assert "--models:" in out and "--dataset:" in out


def test_no_or_unknown_command_is_a_usage_error(capsys):
    assert cli_main.main(["lit_plugins"]) == 2
    assert "commands:" in capsys.readouterr().err
    assert cli_main.main(["lit_plugins", "prbe"]) == 2
    assert "unknown command 'prbe'" in capsys.readouterr().err


def test_a_second_call_starts_from_the_defaults(tmp_path):
    """Flags of one call must not leak into the next call in the same process."""
    from lit_plugins.cli import flags as cli_flags

    small = ["--synthetic", "--vocab=50", "--tokens=400", "--nopng", "--nohtml"]
    assert (
        cli_main.main(["x", "txray-report", f"--output_dir={tmp_path}", *small, "--neurons=16"])
        == 0
    )
    assert cli_flags.NEURONS.value == 16
    assert cli_main.main(["x", "txray-report", f"--output_dir={tmp_path}", *small]) == 0
    assert cli_flags.NEURONS.value == 384  # the default again
