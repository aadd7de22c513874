"""Corpus-scale runs: the `python -m lit_plugins` commands (probe, txray,
attribute), their resumable shards and their data-parallel execution.

Each command module is LIT glue over the same cores the interpreters use;
`shards` is the resumable, rank-partitioned output; `cli` parses the flags.
"""
