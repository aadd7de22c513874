"""Perturbed token ids through an `HFSequenceClassifier`'s HF model, batched:
the model side of `attribution.faithfulness` (which is LIT- and HF-free).

`PerturbationRunner(model).encode(inputs)` tokenises examples exactly as the
wrapper does (`HFSequenceClassifier.encode`: its truncation, its handling of
given `tokens`, text pairs) and returns the `faithfulness.TokenizedExample`s
with their `prob_fn`: a list of `faithfulness.Row`s (perturbations of those
examples) runs as one padded batch (token type ids taken from the original
positions, so text pairs keep their segments) and comes back as softmax
probabilities. Forward passes hold the wrapper's `inference_lock`.

Special tokens here are the structural ones the tokenizer adds ([CLS], [SEP],
<s>, </s>, padding and other special tokens) — never removed. [UNK] and
[MASK] inside the text are content and can be removed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lit_plugins.faithfulness import metrics as core
from lit_plugins.faithfulness.perturbed_inputs import ProbFn, Row, TokenizedExample
from lit_plugins.hf import heads

JsonDict = dict[str, Any]


class PerturbationRunner:
    """`prob_fn` for `attribution.faithfulness.score` over a wrapped HF model."""

    def __init__(self, model):
        """`model`: the HF wrapper itself (callers unwrap LIT's caching wrapper first)."""
        raw = model
        for attr in ("model", "tokenizer", "encode"):
            if not hasattr(raw, attr):
                raise ValueError(
                    f"{type(raw).__name__} is not an HF sequence classifier wrapper "
                    f"(no .{attr}); faithfulness scoring needs HFSequenceClassifier."
                )
        if getattr(raw, "is_regression", False):
            raise ValueError("Faithfulness scoring needs a classifier (class probabilities).")
        self.raw = raw
        tok = raw.tokenizer
        self.mask_id = tok.mask_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        content = {tok.unk_token_id, tok.mask_token_id} - {None}
        self.special_ids = frozenset(int(i) for i in tok.all_special_ids) - content
        self.forward_calls = 0
        self.rows_run = 0

    @property
    def labels(self) -> list[str]:
        return list(getattr(self.raw, "labels", []))

    def encode(self, inputs: Sequence[JsonDict]) -> tuple[list[TokenizedExample], ProbFn]:
        """The examples' token ids as the model runs them (specials marked),
        and the `prob_fn` for perturbations of them (rows name examples by
        their index in `inputs`)."""
        raw = self.raw
        out: list[TokenizedExample] = []
        type_ids: list[np.ndarray | None] = []
        with raw.inference_lock:
            for start in range(0, len(inputs), max(1, raw.batch_size)):
                batch = raw.encode(list(inputs[start : start + raw.batch_size]))
                enc = {k: v.cpu().numpy() for k, v in batch["enc"].items()}
                for j in range(enc["input_ids"].shape[0]):
                    pos = np.flatnonzero(enc["attention_mask"][j])
                    ids = enc["input_ids"][j, pos].astype(np.int64)
                    tti = enc.get("token_type_ids")
                    type_ids.append(None if tti is None else tti[j, pos].astype(np.int64))
                    special = np.isin(ids, list(self.special_ids))
                    # The class the gradient methods explain for this input: its
                    # `grad_class` when pinned, else (None) the highest-scoring one.
                    target = batch["targets"][j]
                    out.append(TokenizedExample(ids, special, target))
        return out, functools.partial(self._run, type_ids)

    def tokens(self, example: TokenizedExample) -> list[str]:
        return list(self.raw.tokenizer.convert_ids_to_tokens(example.input_ids.tolist()))

    def options(self, **kw) -> core.FaithfulnessOptions:
        """FaithfulnessOptions with this tokenizer's mask and pad ids, and rows
        per forward pass for the device (32 on a CPU, where small batches run
        fastest per row; 512 on a GPU) unless `batch_size` is given."""
        kw.setdefault("batch_size", 32 if torch.device(self.raw.device).type == "cpu" else 512)
        return core.FaithfulnessOptions(mask_id=self.mask_id, pad_id=self.pad_id, **kw)

    def _run(self, type_ids: list[np.ndarray | None], rows: Sequence[Row]) -> np.ndarray:
        raw = self.raw
        width = max(r.input_ids.size for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(rows), width), dtype=np.int64)
        with_types = bool(type_ids) and type_ids[0] is not None
        types = np.zeros((len(rows), width), dtype=np.int64) if with_types else None
        right = raw.padding_side != "left"
        for i, r in enumerate(rows):
            n = r.input_ids.size
            cols = slice(0, n) if right else slice(width - n, width)
            ids[i, cols] = r.input_ids
            attention[i, cols] = r.attention
            if types is not None:
                types[i, cols] = type_ids[r.example][r.positions]
        device = raw.device
        mask = torch.from_numpy(attention).to(device)
        kwargs = {
            "input_ids": torch.from_numpy(ids).to(device),
            **heads.forward_kwargs(raw.head, {"attention_mask": mask}),
        }
        if types is not None:
            kwargs["token_type_ids"] = torch.from_numpy(types).to(device)
        with raw.inference_lock, torch.inference_mode():
            logits = raw.model(**kwargs).logits
            probs = heads.probabilities(raw.head, logits.float()).cpu().numpy()
        self.forward_calls += 1
        self.rows_run += len(rows)
        return probs.astype(np.float64)
