"""LIT glue: the model wrapper, spec reading, word/piece alignment, dataset-level plumbing,
one thin adapter per interpreter (`lit.interpreters`) and the salience-method registry.

Sits under the faces (`app/`, `cli/`) and over `hf/`, the math packages and `util/`."""
