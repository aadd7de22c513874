"""The bottom layer: torch devices, torch.distributed, statistics (the one bootstrap).

Imports nothing else from lit_plugins."""
