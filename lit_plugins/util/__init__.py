"""The bottom layer: torch devices, torch.distributed, statistics (the one bootstrap),
the byte-bounded LRU, the output store, freed memory back to the system.

Imports nothing else from lit_plugins."""
