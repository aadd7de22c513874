"""One line describing the machine a benchmark ran on, for its first output line.

    from tests.benchmarks import machine   # benchmarks run as modules: ./run bench
    machine.print_header(args)             # machine line, command line, arguments

CPU model, logical cores (and how many this process may use), torch version,
threads and BLAS backend, numpy version and BLAS, and the GPU if torch sees
one.  Every part is best-effort: a missing piece prints as '?', never raises.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"


def _cores() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = total
    return f"{total} logical cores" + ("" if usable == total else f" ({usable} usable)")


def _torch() -> str:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    parts = [
        f"torch {torch.__version__}",
        f"{torch.get_num_threads()} threads",
        f"BLAS {blas.group(1) if blas else '?'}",
    ]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}")
    else:
        parts.append("no GPU")
    return ", ".join(parts)


def _numpy() -> str:
    try:
        import numpy as np
    except ImportError:
        return "numpy not installed"
    blas = "?"
    try:
        dep = np.__config__.CONFIG["Build Dependencies"]["blas"]  # numpy >= 1.26
        blas = f"{dep.get('name', '?')} {dep.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        pass
    return f"numpy {np.__version__} (BLAS {blas})"


def describe() -> str:
    """'Machine: <cpu>, <cores>; torch …; numpy …; Python …' on one line."""
    return (
        f"Machine: {_cpu_model()}, {_cores()}; {_torch()}; {_numpy()}; "
        f"Python {platform.python_version()} on {platform.system()}"
    )


def command() -> str:
    """The command line that started this process, as a user would type it."""
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def print_header(args=None) -> None:
    """The first lines of every benchmark: machine, command and arguments."""
    print(describe())
    print(f"Command: {command()}")
    if args is not None:
        print(f"Arguments: {vars(args)}")
    print(flush=True)


def checkpoint(path: str) -> str:
    """'<dir name>, weights sha256 <12 hex>': which fine-tune a table measured
    (the demo model is fine-tuned on each machine, and its weights differ)."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        if name.endswith((".safetensors", ".bin")):
            with open(os.path.join(path, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return f"{os.path.basename(os.path.normpath(path))}, weights sha256 {digest.hexdigest()[:12]}"


if __name__ == "__main__":
    print(describe())
