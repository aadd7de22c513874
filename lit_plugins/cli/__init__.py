"""The command line (a face): ``python -m lit_plugins probe|txray|attribute|...``, its
resumable shards and progress. Nothing below imports it."""
