"""A LIT model around any HuggingFace `AutoModelForSequenceClassification`.

Fields (names are constructor-configurable only for the text inputs and the
label; the rest follow LIT's GLUE wrapper so LIT's own components work too):

  input:  <text fields>, <label>, tokens (Tokens, optional), token_embs
          (TokenEmbeddings, optional), grad_class (CategoryLabel, optional;
          classification only)
  output: tokens, probas | score, token_embs, token_grads, grad_class,
          cls_emb, cls_grad, layer_<i>/avg_emb, [layer_<i>/attention],
          layer_<i>/token_activations (only when asked, see specs.py)

What each field enables among LIT 1.3's built-in components (checked by
tests/lit/test_lit_compatibility.py on tiny BERT, DistilBERT and RoBERTa):

- `probas` (MulticlassPreds, parent = the label): classification results,
  metrics (multiclass, paired), curves, thresholder, confusion matrix. For a
  multi-label head, `probas` is a SparseMultilabelPreds (every label with its
  sigmoid probability) and the label a SparseMultilabel (a list of labels):
  the Multilabel Results module and multi-label metrics (see `lit.multilabel`).
- `tokens` + `token_embs` + `token_grads` (+ `grad_class` as input):
  Grad L2 Norm, Grad · Input, Integrated Gradients, LIME, Salience Clustering.
- `cls_emb`, `layer_<i>/avg_emb` (Embeddings): nearest neighbours, PCA / UMAP
  projector, TCAV's concept activation vectors.
- `cls_grad` (Gradients of the target probability w.r.t. `cls_emb`, aligned
  to `probas`, target in `grad_class`): TCAV.
- `tokens` accepted as input + `get_embedding_table()`: HotFlip.
- The text fields: Ablation Flip, Scrambler, Word Replacer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.hf import heads
from lit_plugins.hf.classifier import CLS_GRAD, GRAD_CLASS, TOKEN_EMBS, TOKENS, HFClassifier
from lit_plugins.lit import multilabel, specs

JsonDict = specs.JsonDict
__all__ = [
    "CLS_EMB",
    "CLS_GRAD",
    "GRAD_CLASS",
    "LAST_TOKEN_EMB",
    "LAST_TOKEN_GRAD",
    "PROBAS",
    "SCORE",
    "TOKENS",
    "TOKEN_EMBS",
    "TOKEN_GRADS",
    "HFSequenceClassifier",
    "from_pretrained",
]

PROBAS = "probas"
SCORE = "score"
TOKEN_GRADS = "token_grads"
CLS_EMB = "cls_emb"
LAST_TOKEN_EMB = "last_token_emb"
LAST_TOKEN_GRAD = "last_token_grad"


class HFSequenceClassifier(HFClassifier, lit_model.BatchedModel):
    """LIT BatchedModel for a PyTorch HF sequence classifier or regressor.

    Works with LIT's built-in TCAV (`cls_grad`), HotFlip (`tokens` input and
    `get_embedding_table`), Salience Clustering, LIME, the gradient salience
    maps, the embeddings projector, nearest neighbours, metrics, curves and the
    thresholder, and the text generators (see the module docstring for the
    fields each one uses). Loading, tokenisation and the forward pass are
    `HFClassifier`'s (see there for the constructor's arguments and for how
    `tokens` given as input are used).
    """

    def __init__(self, *args, threshold: float = multilabel.DEFAULT_THRESHOLD, **kw):
        """`HFClassifier`'s arguments, and for a multi-label head the `threshold`: a
        label is predicted when its sigmoid probability is above it (LIT's
        multi-label metrics as served by `lit.multilabel_metrics.plugin_metrics`)."""
        super().__init__(*args, **kw)
        self.threshold = multilabel.check_threshold(threshold)

    @property
    def is_multi_label(self) -> bool:
        return self.head.problem == heads.MULTI_LABEL

    # ---------------------------------------------------------------- LIT API
    @classmethod
    def init_spec(cls) -> lit_types.Spec:
        # Only plain, safe arguments can come from the UI's "load model" dialog.
        return {
            "model_name_or_path": lit_types.String(),
            "batch_size": lit_types.Integer(default=16, min_val=1, max_val=256),
            "max_length": lit_types.Integer(default=128, min_val=8, max_val=512),
            "threshold": lit_types.Scalar(
                default=multilabel.DEFAULT_THRESHOLD, min_val=0, max_val=1, step=0.01
            ),
        }

    def description(self) -> str:
        text = f"HFSequenceClassifier({self.name_or_path})"
        if self.is_multi_label:  # LIT's UI shows it with the model (Global settings)
            text += f", multi-label, threshold {self.threshold:g}"
        return text

    def max_minibatch_size(self, **unused_kw) -> int:
        return self.batch_size

    @property
    def supports_concurrent_predictions(self):
        return False

    def input_spec(self) -> lit_types.Spec:
        spec: lit_types.Spec = {f: lit_types.TextSegment() for f in self.text_fields}
        if self.is_regression:
            spec[self.label_field] = lit_types.Scalar(required=False)
        elif self.is_multi_label:
            spec[self.label_field] = multilabel.gold_spec(self.labels)
            spec[GRAD_CLASS] = lit_types.CategoryLabel(vocab=self.labels, required=False)
        else:
            spec[self.label_field] = lit_types.CategoryLabel(vocab=self.labels, required=False)
            spec[GRAD_CLASS] = lit_types.CategoryLabel(vocab=self.labels, required=False)
        # Same attributes as the output field (HotFlip checks that they match).
        spec[TOKENS] = lit_types.Tokens(parent=self.text_fields[0], required=False)
        spec[TOKEN_EMBS] = lit_types.TokenEmbeddings(align=TOKENS, required=False)
        return spec

    def output_spec(self) -> lit_types.Spec:
        spec: lit_types.Spec = {
            TOKENS: lit_types.Tokens(parent=self.text_fields[0]),
        }
        if self.is_regression:
            spec[SCORE] = lit_types.RegressionScore(parent=self.label_field)
        elif self.is_multi_label:
            spec[PROBAS] = multilabel.preds_spec(self.labels, self.label_field)
        else:
            spec[PROBAS] = lit_types.MulticlassPreds(vocab=self.labels, parent=self.label_field)
        spec[TOKEN_EMBS] = lit_types.TokenEmbeddings(align=TOKENS)
        spec[TOKEN_GRADS] = lit_types.TokenGradients(
            align=TOKENS,
            grad_for=TOKEN_EMBS,
            grad_target_field_key=None if self.is_regression else GRAD_CLASS,
        )
        if not self.is_regression:
            spec[GRAD_CLASS] = lit_types.CategoryLabel(vocab=self.labels)
        spec[self.pooled_emb_field] = lit_types.Embeddings()
        # d p(target) / d cls_emb (the score for regression), as LIT's GLUE
        # models declare it for TCAV: aligned to the predictions, `grad_for`
        # the embedding, target class in `grad_class`. Unlike the GLUE models
        # (which return the gradient at the first *input* word embedding),
        # this is the gradient at the last layer's first-token state, the
        # vector `cls_emb` holds, so TCAV's directional derivatives are taken
        # in the space its concept vectors are trained in.
        spec[self.pooled_grad_field] = lit_types.Gradients(
            align=SCORE if self.is_regression else PROBAS,
            grad_for=self.pooled_emb_field,
            grad_target_field_key=None if self.is_regression else GRAD_CLASS,
        )
        for i in range(self.num_layers + 1):
            spec[f"layer_{i}/avg_emb"] = lit_types.Embeddings()
        if self.output_attention:
            for i in range(1, self.num_layers + 1):
                spec[f"layer_{i}/attention"] = lit_types.AttentionHeads(
                    align_in=TOKENS, align_out=TOKENS
                )
        for i in range(self.num_layers + 1):
            spec[specs.LAYER_ACTIVATIONS_TEMPLATE.format(i)] = lit_types.TokenEmbeddings(
                align=TOKENS, required=False
            )
        return spec

    @property
    def pooled_emb_field(self) -> str:
        """The last layer's state at the token the head reads: `cls_emb` for encoders (the
        first token, as LIT's GLUE models name it), `last_token_emb` for decoders."""
        return LAST_TOKEN_EMB if self.head.is_decoder else CLS_EMB

    @property
    def pooled_grad_field(self) -> str:
        """The gradient of the target at `pooled_emb_field` (TCAV's gradient layer)."""
        return LAST_TOKEN_GRAD if self.head.is_decoder else CLS_GRAD

    def get_embedding_table(self) -> tuple[list[str], np.ndarray]:
        """(vocab, table) as LIT's HotFlip and Salience Clustering expect:
        `vocab[i]` is the word piece of token id i as the `tokens` field writes
        it, `table[i]` its input word embedding (the space of `token_embs` and
        `token_grads`), float32 [n, embedding dim]; n = the tokenizer's size,
        or the embedding matrix's rows if fewer."""
        weight = self.model.get_input_embeddings().weight.detach()
        n = min(len(self.tokenizer), int(weight.shape[0]))
        if self._vocab is None or len(self._vocab) != n:
            pieces = self.tokenizer.convert_ids_to_tokens(list(range(n)))
            self._vocab = [p if isinstance(p, str) else "" for p in pieces]
        return list(self._vocab), weight[:n].float().cpu().numpy()

    def predict_minibatch(
        self,
        inputs: list[JsonDict],
        activation_layers: str | Iterable[int] | None = None,
        gradients: bool = True,
    ) -> list[JsonDict]:
        """Runs one batch.

        Args:
          inputs: examples following input_spec().
          activation_layers: also return `layer_<i>/token_activations` for these
            layers ('all' for every layer incl. the embedding output, 0).
          gradients: compute TokenGradients (set False for activation sweeps).

        Returns:
          One dict per example, trimmed to its own number of tokens.
        """
        layers = self._parse_layers(activation_layers)
        with self.inference_lock:
            batch = self.encode(inputs)
            out = self.forward(batch, gradients=gradients)
            return self._unbatch(batch, out, layers, gradients)

    def _unbatch(self, batch, out, layers, gradients) -> list[JsonDict]:
        mask = batch["enc"]["attention_mask"]
        maskf = mask.unsqueeze(-1).to(out["hidden_states"][0].dtype)
        pooled = [_np((h * maskf).sum(1) / maskf.sum(1)) for h in out["hidden_states"]]
        last = _np(out["hidden_states"][-1])
        # The token the head reads: the first (encoders) or the last real one (decoders).
        read = heads.pooled_positions(self.head, mask).cpu().numpy()
        embs = _np(out["embs"])
        grads = _np(out["grads"]) if gradients else None
        cls_grads = out["cls_grads"]
        cls_grads = _np(cls_grads) if gradients and cls_grads is not None else None
        hidden = {l: _np(out["hidden_states"][l]) for l in layers}
        if self.is_regression:
            scores = _np(out["scores"])
        else:
            probs = _np(out["probs"])
            targets = out["targets"].cpu().numpy()
        attn = [_np(a) for a in out["attentions"]] if self.output_attention else None
        ids = batch["enc"]["input_ids"].cpu().numpy()
        results = []
        for i in range(len(batch["lengths"])):
            # Padding may sit on either side (tokenizer.padding_side).
            pos = np.flatnonzero(mask[i].cpu().numpy())
            r = {
                TOKENS: self.tokenizer.convert_ids_to_tokens(ids[i, pos].tolist()),
                TOKEN_EMBS: embs[i, pos],
                self.pooled_emb_field: last[i, read[i]],
            }
            if self.is_regression:
                r[SCORE] = float(scores[i])
            else:
                r[PROBAS] = (
                    multilabel.scored_labels(self.labels, probs[i])
                    if self.is_multi_label
                    else probs[i]
                )
                r[GRAD_CLASS] = self.labels[int(targets[i])]
            if gradients:
                r[TOKEN_GRADS] = grads[i, pos]
                if cls_grads is not None:
                    r[self.pooled_grad_field] = cls_grads[i, read[i]]
            for l, p in enumerate(pooled):
                r[f"layer_{l}/avg_emb"] = p[i]
            if attn is not None:
                for l, a in enumerate(attn, start=1):
                    r[f"layer_{l}/attention"] = a[i][:, pos][:, :, pos]
            for l in layers:
                r[specs.LAYER_ACTIVATIONS_TEMPLATE.format(l)] = hidden[l][i, pos]
            results.append(r)
        return results


def _np(x: torch.Tensor) -> np.ndarray:
    """A tensor as numpy, half precision as float32 (numpy has no bfloat16)."""
    return heads.at_least_float32(x.detach()).cpu().numpy()


def from_pretrained(path: str, **kw) -> HFSequenceClassifier:
    """Shorthand for HFSequenceClassifier(path, **kw)."""
    return HFSequenceClassifier(os.fspath(path), **kw)
