"""The file names of a corpus run's output directory: the command line writes them
(`cli.shards`, `cli.probe`, `cli.txray`), the served app reads them
(`lit.saved_results`). A module of its own, with no imports, so that a corpus
process does not import the LIT interpreters to learn a file name."""

# Every corpus run's manifest: {"config": {...}, "num_items": ..., ...} (cli/shards.py)
RUN_MANIFEST = "run.json"
# `probe`'s output directory
SWEEP_FILE = "sweep.npz"
RESULTS_FILE = "probe.json"
PROBE_FORMAT = "lit_plugins.corpus.probe/1"  # a file-format id, kept across the package move
# `attribute`'s rows: Parquet shards beside the manifest
ATTRIBUTE_SHARDS = "shard-*.parquet"
# `txray`'s output directory
REFERENCE_FILE = "reference.npz"
MODEL_FILE = "model.npz"
