"""The command line of `python -m lit_plugins` in 1 process or N under a launcher."""

import os
import sys

from tests.kit import demo_server


def lit_plugins_command(world: int = 1, launcher: str = "torchrun") -> list[str]:
    """argv up to the subcommand: plain python (world 1), `torchrun`, or
    `accelerate launch --multi_gpu` (its multi-process launcher; without a
    GPU our processes join with gloo, while `--cpu` would start one process)."""
    if world == 1:
        return [sys.executable, "-m", "lit_plugins"]
    if launcher == "accelerate":
        return [
            os.path.join(os.path.dirname(sys.executable), "accelerate"),
            "launch",
            "--multi_gpu",
            f"--num_processes={world}",
            f"--main_process_port={demo_server.free_port()}",
            "-m",
            "lit_plugins",
        ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={world}",
        "-m",
        "lit_plugins",
    ]
