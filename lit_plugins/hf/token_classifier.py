"""A HuggingFace token classifier (NER, POS) and its tokenizer, as our interpreters run it.

Per-word tags from an `AutoModelForTokenClassification`: the text's whitespace words
are tokenised with ``is_split_into_words=True`` and each word is tagged by its first
word piece (``tokenizer.word_ids()``), as HF's token-classification pipeline does with
``aggregation_strategy="first"``. Batches are always padded on the right, whatever the
tokenizer's padding side: with the attention mask, right padding leaves every real
position as it is alone (encoders and causal decoders alike, whose position ids count
from the first position).

Gradients and integrated gradients explain one (word, tag) target per example: F is
the softmax probability of the tag at the word's first piece, attributed over every
word piece's input embedding (``hf.paths`` supplies the chunking, `attribution` the
quadrature). No `lit_nlp` here: `lit_plugins.lit.token_model` is the LIT model on top.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers

from lit_plugins.attribution import baselines as baselines_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.hf import heads, layer_hooks, loading
from lit_plugins.hf import paths as hf_paths
from lit_plugins.hf.loading import DTYPES
from lit_plugins.hf.words import entity_spans, parse_word
from lit_plugins.util import bio
from lit_plugins.util.devices import pick_device

JsonDict = dict[str, Any]
ARCH_SUFFIX = "ForTokenClassification"


def is_token_classifier(model_or_config) -> bool:
    """Whether a model object or a config (its `architectures`) is a token classifier."""
    if isinstance(model_or_config, torch.nn.Module):
        return type(model_or_config).__name__.endswith(ARCH_SUFFIX)
    archs = list(getattr(model_or_config, "architectures", None) or [])
    return any(a.endswith(ARCH_SUFFIX) for a in archs)


class HFTokenTagger:
    """A PyTorch HF token classifier with its tokenizer: words, first-piece alignment,
    forward with per-(word, tag) gradients, integrated gradients paths."""

    def __init__(
        self,
        model_name_or_path: str = "",
        labels: Sequence[str] | None = None,
        text_field: str = "sentence",
        tags_field: str = "tags",
        batch_size: int = 16,
        max_length: int = 128,
        device: str = "auto",
        *,
        model: transformers.PreTrainedModel | None = None,
        tokenizer: transformers.PreTrainedTokenizerBase | None = None,
        dtype: str = "auto",
    ):
        """Loads a checkpoint by path/hub name, or wraps objects already in memory.

        Args:
          model_name_or_path: a local directory or hub name (no remote code).
          labels: tag names in the head's output order; default: the config's id2label.
          text_field: the input text field (tagged word by word: whitespace words).
          tags_field: the gold tags field (a list of tags per example; optional).
          batch_size: examples per forward pass.
          max_length: the most word pieces an input may have (a longer one is refused:
            truncating would leave words untagged).
          device: 'auto', 'cpu', 'cuda', 'cuda:1'.
          model, tokenizer: in-memory `transformers` objects instead of a path.
          dtype: the weights' dtype: 'auto' (the checkpoint's), 'float32', 'bfloat16',
            'float16'. Probabilities, gradients and attributions are float32 or better.
        """
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
        if model is None:
            if not model_name_or_path:
                raise ValueError("Give model_name_or_path or model= and tokenizer= objects.")
            config = transformers.AutoConfig.from_pretrained(model_name_or_path)
            if not is_token_classifier(config):
                raise ValueError(
                    f"{model_name_or_path!r} holds {list(config.architectures or [])}, not a "
                    f"token classifier (*{ARCH_SUFFIX})."
                )
            tokenizer = _word_tokenizer(model_name_or_path)
            model = transformers.AutoModelForTokenClassification.from_pretrained(
                model_name_or_path,
                trust_remote_code=False,
                dtype=dtype if DTYPES[dtype] is None else DTYPES[dtype],
            )
        elif tokenizer is None:
            raise ValueError("tokenizer= is required together with model=.")
        if not is_token_classifier(model):
            raise ValueError(
                f"{type(model).__name__} is not a token classifier (*{ARCH_SUFFIX}); supported: "
                + "; ".join(heads.SUPPORTED)
                + "."
            )
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("Token classification needs a fast tokenizer (for word_ids()).")
        _check_split_words(tokenizer)
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be >= 1 and max_length >= 2.")
        self.name_or_path = model_name_or_path or getattr(model.config, "_name_or_path", "")
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            raise ValueError("The tokenizer has no pad token; set tokenizer.pad_token first.")
        self.text_field = text_field
        self.tags_field = tags_field
        self.batch_size = int(batch_size)
        self.max_length = int(min(max_length, loading.model_max_length(model, tokenizer)))
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        if DTYPES[dtype] is not None:
            self.model = self.model.to(DTYPES[dtype])
        num = int(self.model.config.num_labels)
        if labels is None:
            labels = [str(self.model.config.id2label[i]) for i in range(num)]
        self.labels = [str(l) for l in labels]
        if len(self.labels) != num:
            raise ValueError(f"{len(self.labels)} labels given but the head has {num} outputs.")
        self.num_layers = int(self.model.config.num_hidden_layers)
        self.inference_lock = threading.RLock()  # tokenizer state and forward passes
        self.padding_side = "right"  # read by hf.paths' chunking

    # ------------------------------------------------------------ encoding
    def words(self, ex: JsonDict) -> list[str]:
        """The example's whitespace words; ValueError for a missing or empty text."""
        text = ex.get(self.text_field)
        if not isinstance(text, str):
            raise ValueError(f"Input is missing the text field {self.text_field!r}.")
        words = text.split()
        if not words:
            raise ValueError(f"Text field {self.text_field!r} is empty: there is nothing to tag.")
        return words

    def check_gold(self, ex: JsonDict, words: list[str]) -> None:
        """ValueError when the example's gold tags do not fit its words or the tag set."""
        gold = ex.get(self.tags_field)
        if gold is None:
            return
        if isinstance(gold, str) or not all(isinstance(t, str) for t in gold):
            raise ValueError(f"{self.tags_field!r} must be a list of tags, got {gold!r:.80}.")
        if len(gold) == 0:  # no gold for this example (e.g. a sentence typed in the UI)
            return
        if len(gold) != len(words):
            raise ValueError(
                f"{self.tags_field!r} has {len(gold)} tags but the text has {len(words)} "
                f"words: {' '.join(words)[:80]!r}."
            )
        unknown = sorted(set(gold) - set(self.labels))
        if unknown:
            raise ValueError(
                f"{self.tags_field!r} has tags the model does not know: {unknown}; its tags: "
                f"{self.labels}."
            )

    def encode(self, inputs: list[JsonDict]) -> dict[str, Any]:
        """Tokenises a batch (right padded): tensors, word-piece tokens and each word's
        first-piece position."""
        words = [self.words(ex) for ex in inputs]
        for ex, w in zip(inputs, words):
            self.check_gold(ex, w)
        with self.inference_lock:  # the tokenizer's settings are shared state
            enc = self.tokenizer(
                words,
                is_split_into_words=True,
                padding=True,
                padding_side="right",
                truncation=False,
                return_tensors="pt",
            )
        lengths = enc["attention_mask"].sum(1).tolist()
        first: list[list[int]] = []
        word_ids: list[list[int | None]] = []
        for i, w in enumerate(words):
            if lengths[i] > self.max_length:
                raise ValueError(
                    f"The text has {lengths[i]} word pieces; the model takes at most "
                    f"{self.max_length} (max_length). Split it into shorter sentences."
                )
            ids = enc.word_ids(i)[: lengths[i]]
            word_ids.append(ids)
            starts = {}
            for pos, wid in enumerate(ids):
                if wid is not None and wid not in starts:
                    starts[wid] = pos
            missing = [w[k] for k in range(len(w)) if k not in starts]
            if missing:
                raise ValueError(f"Words {missing[:5]} give no word pieces; they cannot be tagged.")
            first.append([starts[k] for k in range(len(w))])
        ids = enc["input_ids"]
        tokens = [
            self.tokenizer.convert_ids_to_tokens(ids[i, : lengths[i]].tolist())
            for i in range(len(inputs))
        ]
        enc = {k: v.to(self.device) for k, v in enc.items()}
        embs = self.model.get_input_embeddings()(enc["input_ids"]).detach()
        return {
            "enc": enc,
            "embs": embs,
            "lengths": lengths,
            "words": words,
            "first": first,
            "word_ids": word_ids,
            "tokens": tokens,
        }

    # ------------------------------------------------------------- forward
    def forward(
        self,
        batch: dict[str, Any],
        targets: Sequence[tuple[int, int]] | None = None,
        hidden_states: bool = False,
    ) -> dict[str, Any]:
        """Tag probabilities per word (float32 or better); with `targets` ((word, tag
        index) per example), also F = p(tag | word) and dF/d(input word embeddings);
        with `hidden_states`, every layer's token states (0 = embedding output)."""
        enc = batch["enc"]
        other = {k: v for k, v in enc.items() if k != "input_ids"}
        embs = batch["embs"].clone().requires_grad_(targets is not None)
        with torch.set_grad_enabled(targets is not None):
            out = self.model(inputs_embeds=embs, output_hidden_states=hidden_states, **other)
            logits = out.logits
            probs = torch.softmax(heads.at_least_float32(logits), dim=-1)
            grads = f = None
            if targets is not None:
                f = self._score(probs, batch, list(range(len(targets))), targets)
                (grads,) = torch.autograd.grad(f.sum(), embs)
        word_probs = [
            probs[i, batch["first"][i]].detach().cpu().numpy() for i in range(len(batch["words"]))
        ]
        states = [h.detach() for h in out.hidden_states] if hidden_states else None
        return {
            "word_probs": word_probs,
            "f": f,
            "grads": grads,
            "embs": embs.detach(),
            "hidden_states": states,
        }

    @staticmethod
    def _score(probs, batch, rows: Sequence[int], targets) -> torch.Tensor:
        """p(tag | word) per row, at the target word's first piece."""
        pos = [batch["first"][r][targets[k][0]] for k, r in enumerate(rows)]
        index = torch.arange(len(rows), device=probs.device)
        tags = torch.tensor([t[1] for t in targets], device=probs.device)
        return probs[index, torch.tensor(pos, device=probs.device), tags]

    def predict_words(self, inputs: list[JsonDict], layers: Sequence[int] = ()) -> list[JsonDict]:
        """Per example: words, word pieces, predicted tags, per-word tag probabilities
        [words, tags], entity spans (BIO tags) with character offsets and, for
        `layers` (hidden_states indices, 0 = embedding output), {layer: [pieces, H]}
        token states (float32 or better)."""
        bad = [l for l in layers if not 0 <= l <= self.num_layers]
        if bad:
            raise ValueError(f"Layers {bad} out of range: 0 (embeddings) to {self.num_layers}.")
        results = []
        for start in range(0, len(inputs), self.batch_size):
            chunk = inputs[start : start + self.batch_size]
            with self.inference_lock, torch.no_grad():
                batch = self.encode(chunk)
                out = self.forward(batch, hidden_states=bool(layers))
            states = {
                l: heads.at_least_float32(out["hidden_states"][l]).cpu().numpy() for l in layers
            }
            for i, ex in enumerate(chunk):
                p = out["word_probs"][i]
                tags = [self.labels[int(k)] for k in p.argmax(-1)]
                n = batch["lengths"][i]
                results.append(
                    {
                        "words": batch["words"][i],
                        "tokens": batch["tokens"][i],
                        "tags": tags,
                        "probs": p,
                        "entities": entity_spans(ex[self.text_field], tags, p.max(-1)),
                        "layers": {l: h[i, :n] for l, h in states.items()},
                    }
                )
        return results

    # --------------------------------------------------------- attribution
    def resolve_targets(
        self, batch: dict[str, Any], probs: list[np.ndarray], targets
    ) -> list[tuple[int, int]]:
        """(word, tag index) per example from (word or None, tag or None) requests:
        the word defaults to the first one tagged as an entity (not 'O'), else word 0;
        the tag to the word's predicted tag."""
        resolved = []
        for i, (word, tag) in enumerate(targets or [(None, None)] * len(probs)):
            predicted = probs[i].argmax(-1)
            n = len(batch["words"][i])
            if word is None or word == "":
                tagged = [k for k in range(n) if self.labels[predicted[k]] != bio.OUTSIDE]
                word = tagged[0] if tagged else 0
            word = parse_word(word, batch["words"][i])
            if tag is None or tag == "":
                index = int(predicted[word])
            elif str(tag) in self.labels:
                index = self.labels.index(str(tag))
            else:
                raise ValueError(f"Tag {tag!r} is not one of the model's tags: {self.labels}.")
            resolved.append((word, index))
        return resolved

    def gradient_x_input(self, inputs: list[JsonDict], targets=None) -> list[JsonDict]:
        """Per example: word pieces, ∇F · x per piece, F, and the resolved target."""
        with self.inference_lock:
            batch = self.encode(inputs)
            with torch.no_grad():
                probs = self.forward(batch)["word_probs"]
            chosen = self.resolve_targets(batch, probs, targets)
            out = self.forward(batch, chosen)
        values = heads.at_least_float32((out["grads"] * out["embs"]).sum(-1)).cpu().numpy()
        return [
            {
                "tokens": batch["tokens"][i],
                "salience": values[i, : batch["lengths"][i]].astype(np.float64),
                "f": float(out["f"][i].detach()),
                "target": chosen[i],
                "words": batch["words"][i],
                "first": batch["first"][i],
                "word_ids": batch["word_ids"][i],
            }
            for i in range(len(inputs))
        ]

    def integrated_gradients(
        self, inputs: list[JsonDict], targets=None, options: ig_lib.IGOptions = ig_lib.DEFAULTS
    ) -> list[JsonDict]:
        """Integrated gradients of F = p(tag | word) over the input word embeddings,
        with the completeness report of `attribution.integrated_gradients`."""
        path_fn, batch, chosen = self.integrated_gradients_path(
            inputs, targets, options.baseline, options.keep_special, options.layer
        )
        results = ig_lib.integrated_gradients(len(inputs), path_fn, **options.quadrature())
        return [
            {
                "tokens": batch["tokens"][i],
                "result": res,
                "target": chosen[i],
                "words": batch["words"][i],
                "first": batch["first"][i],
                "word_ids": batch["word_ids"][i],
            }
            for i, res in enumerate(results)
        ]

    def integrated_gradients_path(
        self,
        inputs,
        targets=None,
        baseline: str = "zero",
        keep_special: bool = False,
        layer: int | None = None,
    ):
        """(path_fn, batch, targets) for `attribution.integrated_gradients`: the straight
        path from a baseline (zero, pad or mask embeddings) to the input's word
        embeddings, F = p(tag | word) at each point; with `layer` (a hidden_states
        index, 0 = the embedding output), the path between the baseline's and the
        input's token states of that layer instead (layer integrated gradients,
        substituted with `hf.layer_hooks.hidden_state_hook`)."""
        setup, chosen = self.path_setup(inputs, targets, baseline, keep_special)
        batch, other, x, b = setup.batch, setup.other, setup.x_word, setup.b_word
        score = self.target_score(batch, chosen)
        x_space, b_space = x, b
        if layer is not None:
            layer_hooks.check_layer(layer, self.num_layers)
            with self.inference_lock, torch.no_grad():
                states = [
                    self.model(inputs_embeds=e, output_hidden_states=True, **other).hidden_states
                    for e in (x, b)
                ]
            x_space, b_space = states[0][layer], states[1][layer]
            self._check_substitution(x, x_space, other, layer)
        diff = x_space - b_space

        def run(points):
            rows, alpha, width = hf_paths._rows(self, setup, points)
            sub = diff[rows, :width]
            point = (b_space[rows, :width] + alpha * sub).requires_grad_(True)
            kwargs = {k: v[rows, :width] for k, v in other.items()}
            hook = (
                contextlib.nullcontext()
                if layer is None
                else layer_hooks.hidden_state_hook(
                    self.model, self.num_layers, layer, lambda _: point
                )
            )
            with torch.enable_grad(), hook:
                embs = point if layer is None else x[rows, :width]
                f = score(self.model(inputs_embeds=embs, **kwargs).logits, points)
                (grad,) = torch.autograd.grad(f.sum(), point)
            integrand = heads.at_least_float32(grad * sub).sum(-1).detach().cpu().numpy()
            f = f.detach().cpu().numpy().astype(np.float64)
            return list(zip(f.tolist(), hf_paths._per_token(setup, integrand, points)))

        return hf_paths._chunked(self, setup, run), batch, chosen

    def path_setup(self, inputs, targets=None, baseline: str = "zero", keep_special=False):
        """(setup, targets): the batch as `hf.paths` takes it (input and baseline word
        embeddings) and the resolved (word, tag index) target per example."""
        with self.inference_lock:
            batch = self.encode(inputs)
            with torch.no_grad():
                probs = self.forward(batch)["word_probs"]
        chosen = self.resolve_targets(batch, probs, targets)
        ids = batch["enc"]["input_ids"]
        special = torch.tensor(
            np.isin(ids.cpu().numpy(), self.tokenizer.all_special_ids), device=self.device
        )
        x = batch["embs"]
        b = baselines_lib.baseline_embeddings(
            x,
            baselines_lib.check_baseline(baseline),
            self.model.get_input_embeddings().weight.detach(),
            self.tokenizer.pad_token_id,
            self.tokenizer.mask_token_id,
            special if keep_special else None,
        )
        other = {k: v for k, v in batch["enc"].items() if k != "input_ids"}
        positions = [torch.nonzero(m).flatten() for m in batch["enc"]["attention_mask"]]
        return hf_paths._Setup(batch, other, positions, batch["tokens"], x, b, None, None), chosen

    def target_score(self, batch, chosen):
        """score(logits, points) → F = p(tag | word) per path point (example, α)."""

        def score(logits, points):
            probs = torch.softmax(heads.at_least_float32(logits), dim=-1)
            rows = [i for i, _ in points]
            return self._score(probs, batch, rows, [chosen[i] for i in rows])

        return score

    def _check_substitution(self, x, x_space, other, layer: int) -> None:
        """ValueError unless putting the input's own hidden_states[layer] back at the
        hooked site reproduces the model's logits (a guard for architectures whose
        hidden states the hooks do not know where to find)."""
        with self.inference_lock, torch.no_grad():
            plain = self.model(inputs_embeds=x, **other).logits
            with layer_hooks.hidden_state_hook(
                self.model, self.num_layers, layer, lambda _: x_space
            ):
                hooked = self.model(inputs_embeds=x, **other).logits
        if not torch.allclose(hooked, plain, rtol=1e-4, atol=1e-4):
            raise ValueError(
                f"Layer {layer} of {type(self.model).__name__} cannot be substituted "
                "exactly (its hidden state is not the input of the layers above it); "
                "choose a lower layer or the input embeddings."
            )


def _check_split_words(tokenizer) -> None:
    try:
        tokenizer(["a", "b"], is_split_into_words=True)
    except (ValueError, AssertionError, TypeError) as e:
        raise ValueError(
            f"The tokenizer cannot take pre-split words ({e}); byte-level BPE tokenizers "
            "(RoBERTa, GPT-2) need add_prefix_space=True."
        ) from None


def _word_tokenizer(path: str):
    """The checkpoint's tokenizer, with add_prefix_space=True where pre-split words
    need it (byte-level BPE)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    try:
        tokenizer(["a", "b"], is_split_into_words=True)
    except (ValueError, AssertionError, TypeError):
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            path, trust_remote_code=False, add_prefix_space=True
        )
    return tokenizer
