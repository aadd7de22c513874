"""Torch device selection shared by the model wrappers and the probes (torch only)."""

from __future__ import annotations

import torch

DeviceLike = str | torch.device | None


def pick_device(device: DeviceLike = None) -> torch.device:
    """None, '' or 'auto' → CUDA when available, else CPU; otherwise as given.

    Accepts a device string ('cpu', 'cuda', 'cuda:1') or a `torch.device`.
    Probes are tiny, but the GPU still wins on large N, so 'auto' prefers it.
    """
    if device is None or (isinstance(device, str) and device in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
