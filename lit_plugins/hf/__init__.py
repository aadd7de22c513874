"""HuggingFace `transformers` models: tokenise and forward, integration paths and hooks,
batched perturbations, live ablation, fine-tuning.

Speaks torch and transformers, never `lit_nlp`; sits under `lit/` and over the math packages."""
