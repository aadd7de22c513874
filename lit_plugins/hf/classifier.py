"""A HuggingFace sequence classifier and its tokenizer, as our interpreters run it.

Tokenises LIT-style example dicts (text fields, optional given word pieces and word
embeddings, an optional gradient target class), runs the model on word embeddings with
gradients of the target probability, and builds integration paths (`hf.paths`). No
`lit_nlp` here: `lit_plugins.lit.model.HFSequenceClassifier` is the LIT model on top.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers
from absl import logging

from lit_plugins.hf import heads
from lit_plugins.hf.loading import DTYPES, check_architecture, model_max_length, with_pad_token
from lit_plugins.util.devices import pick_device

JsonDict = dict[str, Any]

# Example fields this layer reads (the LIT wrapper declares them in its specs).
TOKENS = "tokens"
TOKEN_EMBS = "token_embs"
GRAD_CLASS = "grad_class"
CLS_GRAD = "cls_grad"


class HFClassifier:
    """A PyTorch HF sequence classifier or regressor with its tokenizer: tokenise, forward
    (with gradients), integration paths. The LIT wrapper (`lit_plugins.lit.model`) adds
    the specs and LIT's output fields on top.

    Works with LIT's built-in TCAV (`cls_grad`), HotFlip (`tokens` input and
    `get_embedding_table`), Salience Clustering, LIME, the gradient salience
    maps, the embeddings projector, nearest neighbours, metrics, curves and the
    thresholder, and the text generators (see the module docstring for the
    fields each one uses).

    `tokens` as input: word pieces exactly as the `tokens` output writes them,
    special tokens included (HotFlip copies that output, replaces pieces, and
    writes `" ".join(tokens)` into the first text field). They are used
    instead of tokenising the text when the first text field is empty, missing
    or equal to `" ".join(tokens)`; any other text means the text was changed
    after the tokens were made (edited in the UI, perturbed by LIME or another
    generator), so the tokens are stale and the text is tokenised. Pieces
    outside the vocabulary raise ValueError; longer sequences are truncated to
    `max_length` (keeping a final special token). For a text pair the pieces
    span both segments; segment ids restart after the first separator.
    """

    def __init__(
        self,
        model_name_or_path: str = "",
        labels: Sequence[str] | None = None,
        text_fields: Sequence[str] = ("sentence",),
        label_field: str = "label",
        batch_size: int = 16,
        max_length: int = 128,
        device: str = "auto",
        output_attention: bool = False,
        *,
        model: transformers.PreTrainedModel | None = None,
        tokenizer: transformers.PreTrainedTokenizerBase | None = None,
        dtype: str = "auto",
    ):
        """Loads a checkpoint by path/hub name, or wraps objects already in memory.

        Args:
          model_name_or_path: a local directory or a hub name. Hub names only work
            where the hub is reachable. `trust_remote_code` is never enabled.
          labels: class names, in the head's output order; default: the config's
            id2label. Ignored for a 1-output (regression) head.
          text_fields: one input field name, or two for text pairs.
          label_field: name of the gold label input field.
          batch_size: examples per forward pass.
          max_length: longer inputs are truncated (and a warning is logged).
          device: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:1'.
          output_attention: also return per-layer attention heads.
          model: an in-memory `transformers` model (use instead of a path).
          tokenizer: its tokenizer (required with `model`).
          dtype: the weights' dtype for prediction: 'auto' (the checkpoint's, e.g.
            bfloat16 for a large decoder), 'float32', 'bfloat16' or 'float16'. Outputs,
            gradients and attribution sums are float32 whatever it is.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
        if model is None:
            if not model_name_or_path:
                raise ValueError(
                    "Give model_name_or_path (a local directory or hub name) or "
                    "model= and tokenizer= objects."
                )
            check_architecture(model_name_or_path)
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                model_name_or_path, trust_remote_code=False
            )
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                model_name_or_path,
                trust_remote_code=False,
                dtype=dtype if DTYPES[dtype] is None else DTYPES[dtype],
                **({"num_labels": len(labels)} if labels else {}),
            )
        elif tokenizer is None:
            raise ValueError("tokenizer= is required together with model=.")
        if isinstance(text_fields, str):
            text_fields = (text_fields,)
        if len(text_fields) not in (1, 2):
            raise ValueError(f"text_fields must name one field or a pair, got {text_fields!r}.")
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be >= 1 and max_length >= 2.")

        self.head = heads.head_of(model)  # unsupported heads are refused here
        self.name_or_path = model_name_or_path or getattr(model.config, "_name_or_path", "")
        self.tokenizer = with_pad_token(tokenizer, self.head)
        self.text_fields = tuple(text_fields)
        self.label_field = label_field
        self.batch_size = int(batch_size)
        self.max_length = int(min(max_length, model_max_length(model, tokenizer)))
        self.output_attention = bool(output_attention)
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        if DTYPES[dtype] is not None:
            self.model = self.model.to(DTYPES[dtype])
        if output_attention:
            self.model.set_attn_implementation("eager")

        num_outputs = self.head.num_outputs
        self.is_regression = self.head.problem == heads.REGRESSION
        if self.is_regression:
            self.labels = []
        else:
            if labels is None:
                id2label = self.model.config.id2label
                labels = [str(id2label[i]) for i in range(num_outputs)]
            labels = [str(l) for l in labels]
            if len(labels) != num_outputs:
                raise ValueError(
                    f"{len(labels)} labels given but the model's head has {num_outputs} outputs."
                )
            self.labels = labels
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.hidden_size = int(self.model.get_input_embeddings().embedding_dim)
        # Serialises tokenisation and forward/backward passes on this model.
        # LIT can call one model from several threads (a threaded WSGI server,
        # notebooks; CachingModelWrapper only de-duplicates identical inputs and
        # our interpreters call the unwrapped model). HF fast tokenizers mutate
        # shared truncation/padding state on every call, and layer IG
        # (hf_paths) installs a forward hook on a shared module, so unserialised
        # calls could fail or return another request's numbers. Reentrant:
        # predict_minibatch -> encode.
        self.inference_lock = threading.RLock()
        self._vocab: list[str] | None = None  # get_embedding_table's, built once
        self._type_id_rule: tuple[bool, bool] | None = None  # see _token_type_ids
        self._warned_stale_tokens = False
        self._warned_no_cls_grad = False

    @property
    def padding_side(self) -> str:
        """The side batches are padded on (see `hf.heads`): left for heads that read
        the last token, right for those that read the first."""
        return self.head.padding_side

    def encode(self, inputs: list[JsonDict]) -> dict[str, Any]:
        """Tokenises a batch (or takes its given `tokens`); returns tensors on
        the device plus bookkeeping."""
        with self.inference_lock:  # the tokenizer's settings are shared state
            given = [self._given_tokens(ex) for ex in inputs]
            if any(t is not None for t in given):
                enc, full_lengths = self._encode_with_tokens(inputs, given)
            else:
                enc, full_lengths = self._tokenize(inputs)
        mask = enc["attention_mask"]
        lengths = mask.sum(dim=1).tolist()
        for ex_len, full in zip(lengths, full_lengths):
            if full > ex_len:
                logging.warning(
                    "Input of %d tokens truncated to the model's max length %d.",
                    full,
                    self.max_length,
                )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        word_embs = self.model.get_input_embeddings()(enc["input_ids"]).detach()
        for i, ex in enumerate(inputs):
            given = ex.get(TOKEN_EMBS)
            if given is None:
                continue
            given = np.asarray(given, dtype=np.float32)
            if given.shape != (lengths[i], self.hidden_size):
                raise ValueError(
                    f"{TOKEN_EMBS} of shape {given.shape} does not match the "
                    f"tokenised input: expected ({lengths[i]}, {self.hidden_size})."
                )
            if not np.all(np.isfinite(given)):
                raise ValueError(f"{TOKEN_EMBS} contains NaN or infinite values.")
            word_embs[i, : lengths[i]] = torch.from_numpy(given).to(self.device, word_embs.dtype)
        targets = [self._target_index(ex) for ex in inputs]
        return {
            "enc": enc,
            "embs": word_embs,
            "lengths": lengths,
            "targets": targets,
            "truncated": [f > l for f, l in zip(full_lengths, lengths)],
        }

    def forward(self, batch: dict[str, Any], gradients: bool = True) -> dict[str, Any]:
        """Forward (and backward) on word embeddings; see `encode`.

        The gradient is d p_target / d word_embedding (softmax probability, LIT's
        convention), or d score for a regression head. Examples in a batch are
        independent, so one backward of the summed targets gives every example's
        own gradient.
        """
        enc = batch["enc"]
        embs = batch["embs"].clone().requires_grad_(gradients)
        kwargs = heads.forward_kwargs(self.head, enc)
        with torch.set_grad_enabled(gradients):
            out = self.model(
                inputs_embeds=embs,
                output_hidden_states=True,
                output_attentions=self.output_attention,
                **kwargs,
            )
            logits = out.logits
            if self.is_regression:
                scores = heads.at_least_float32(logits[:, 0])
                targets = None
                chosen = scores
            else:
                # In float32 whatever the weights' dtype (half-precision checkpoints).
                probs = heads.probabilities(self.head, heads.at_least_float32(logits))
                targets = torch.tensor(
                    [
                        int(probs[i].argmax()) if t is None else t
                        for i, t in enumerate(batch["targets"])
                    ],
                    device=self.device,
                )
                chosen = probs.gather(1, targets[:, None])[:, 0]
            grads = cls_grads = None
            if gradients:
                # The last hidden state is the tensor the head reads (cls_emb
                # is its first-token row), so one backward gives both.
                grads, cls_grads = torch.autograd.grad(
                    chosen.sum(), [embs, out.hidden_states[-1]], allow_unused=True
                )
                if cls_grads is None and not self._warned_no_cls_grad:
                    # Not so for any encoder family we test (tests/hf, tests/lit).
                    self._warned_no_cls_grad = True
                    logging.warning(
                        "%s: the classification head does not read the returned last "
                        "hidden state, so %s is left out (TCAV will not work).",
                        type(self.model).__name__,
                        CLS_GRAD,
                    )
        result = {
            "embs": embs.detach(),
            "grads": grads,
            "cls_grads": cls_grads,
            "targets": targets,
            "hidden_states": [h.detach() for h in out.hidden_states],
            "attentions": out.attentions if self.output_attention else None,
        }
        if self.is_regression:
            result["scores"] = scores.detach()
        else:
            result["probs"] = probs.detach()
        return result

    def integrated_gradients_path(
        self, inputs, baseline="zero", keep_special_tokens=False, layer=None, targets=None
    ):
        """Fast integrand for IG on this model's tensors; see hf_paths."""
        from lit_plugins.hf import paths as hf_paths

        return hf_paths.make_path_fn(self, inputs, baseline, keep_special_tokens, layer, targets)

    # -------------------------------------------------------------- helpers
    def _text_args(self, inputs: list[JsonDict]) -> tuple[list[str], ...]:
        texts = [[_text(ex, f) for f in self.text_fields] for ex in inputs]
        return tuple([t[i] for t in texts] for i in range(len(self.text_fields)))

    def _tokenize(self, inputs: list[JsonDict], padded: bool = True) -> tuple[Any, list[int]]:
        """The tokenizer's encoding of the text fields (padded tensors, or
        lists of ids when not `padded`) and each example's untruncated length."""
        args = self._text_args(inputs)
        enc = self.tokenizer(
            *args,
            padding=padded,
            padding_side=self.head.padding_side,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt" if padded else None,
            return_overflowing_tokens=False,
            return_length=False,
        )
        full_lengths = [
            len(ids) for ids in self.tokenizer(*args, truncation=False, verbose=False)["input_ids"]
        ]
        return enc, full_lengths

    def _given_tokens(self, ex: JsonDict) -> list[str] | None:
        """The example's `tokens` if they are to be used (see the class
        docstring), else None."""
        tokens = ex.get(TOKENS)
        if tokens is None or (not isinstance(tokens, str) and len(tokens) == 0):
            return None
        if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"{TOKENS} must be a list of word-piece strings, got {tokens!r:.80}.")
        text = ex.get(self.text_fields[0])
        if isinstance(text, str) and text.strip() and text.strip() != " ".join(tokens).strip():
            if not self._warned_stale_tokens:
                self._warned_stale_tokens = True
                logging.warning(
                    "Input %r differs from ' '.join(%s): the text was changed after the "
                    "tokens were made, so the text is tokenised (logged once).",
                    self.text_fields[0],
                    TOKENS,
                )
            return None
        return list(tokens)

    def _encode_with_tokens(
        self, inputs: list[JsonDict], given: list[list[str] | None]
    ) -> tuple[Any, list[int]]:
        """A batch where some examples come as word pieces: the others are
        tokenised as usual, then all are padded together by the tokenizer."""
        keys = self._encoding_keys()
        rows: list[dict[str, list[int]]] = [{} for _ in inputs]
        full_lengths = [0] * len(inputs)
        text_rows = [i for i, t in enumerate(given) if t is None]
        if text_rows:
            enc, full = self._tokenize([inputs[i] for i in text_rows], padded=False)
            for j, i in enumerate(text_rows):
                rows[i] = {k: list(enc[k][j]) for k in keys}
                full_lengths[i] = full[j]
        for i, tokens in enumerate(given):
            if tokens is None:
                continue
            ids = self._token_ids(tokens)
            full_lengths[i] = len(ids)
            if len(ids) > self.max_length:
                keep_last = ids[-1] in self.tokenizer.all_special_ids
                ids = ids[: self.max_length - 1] + ids[-1:] if keep_last else ids[: self.max_length]
            rows[i] = {"input_ids": ids, "attention_mask": [1] * len(ids)}
            if "token_type_ids" in keys:
                rows[i]["token_type_ids"] = self._token_type_ids(ids)
        batch = {k: [r[k] for r in rows] for k in keys}
        padded = self.tokenizer.pad(
            batch, padding=True, return_tensors="pt", padding_side=self.head.padding_side
        )
        return padded, full_lengths

    def _token_ids(self, tokens: list[str]) -> list[int]:
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        unk = self.tokenizer.unk_token
        bad = [
            t
            for t, i in zip(tokens, ids)
            if i is None or (i == self.tokenizer.unk_token_id and t != unk)
        ]
        if bad:
            raise ValueError(
                f"{TOKENS} has word pieces that are not in the tokenizer's vocabulary: "
                f"{bad[:5]}; give the pieces as the model's `{TOKENS}` output writes them "
                "(special tokens included)."
            )
        return [int(i) for i in ids]

    def _encoding_keys(self) -> list[str]:
        """The fields the tokenizer produces (input_ids, attention_mask and,
        for some models, token_type_ids)."""
        probe = self.tokenizer(*(["a"] for _ in self.text_fields))
        return [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in probe]

    def _token_type_ids(self, ids: list[int]) -> list[int]:
        """Segment ids for given pieces, as the tokenizer would write them: all
        0 for one text; for a pair, 1 after the first separator when the
        tokenizer marks the second segment (BERT) and 0 otherwise."""
        if self._type_id_rule is None:
            pair = len(self.text_fields) == 2
            marks = False
            if pair:
                probe = self.tokenizer(["a"], ["b"])
                marks = any(probe.get("token_type_ids", [[0]])[0])
            self._type_id_rule = (pair, marks)
        pair, marks = self._type_id_rule
        sep = self.tokenizer.sep_token_id
        if not (pair and marks) or sep not in ids:
            return [0] * len(ids)
        split = ids.index(sep) + 1
        return [0] * split + [1] * (len(ids) - split)

    def _parse_layers(self, activation_layers) -> list[int]:
        if activation_layers is None:
            return []
        if activation_layers == "all":
            return list(range(self.num_layers + 1))
        layers = [int(l) for l in activation_layers]
        bad = [l for l in layers if not 0 <= l <= self.num_layers]
        if bad:
            raise ValueError(
                f"activation_layers {bad} out of range: 0 (embedding output) to {self.num_layers}."
            )
        return layers

    def _target_index(self, ex: JsonDict) -> int | None:
        if self.is_regression:
            return None
        target = ex.get(GRAD_CLASS)
        if target is None or target == "":
            return None
        if str(target) not in self.labels:
            raise ValueError(
                f"{GRAD_CLASS}={target!r} is not a class of this model; accepted: {self.labels}."
            )
        return self.labels.index(str(target))


def _text(ex: JsonDict, field: str) -> str:
    value = ex.get(field)
    if value is None:
        raise ValueError(f"Input is missing the text field {field!r}.")
    if not isinstance(value, str):
        raise ValueError(f"Text field {field!r} must be a string, got {type(value).__name__}.")
    try:  # JSON may carry lone UTF-16 surrogates ("\ud800"): the Rust
        value.encode("utf-8")  # tokenizer would fail with an opaque TypeError.
    except UnicodeEncodeError as e:
        raise ValueError(
            f"Text field {field!r} is not valid Unicode: {e.reason} at position {e.start}."
        ) from None
    # Empty or whitespace-only text is classified from the special tokens alone
    # (byte-level tokenizers would otherwise turn blanks into tokens).
    return value if value.strip() else ""
