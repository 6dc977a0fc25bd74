"""The document model: vision tower + projector + language model, assembled in one place.

In: normalised views ``[V, 3, T, T]`` with their ``TilePlan``s, and questions (plus
answers when training). Out: packed visual tokens ``[V, Q, D]``, a padded ``Batch`` of
LLM inputs in the published HD layout, generated answers with their token
log-probabilities, or a training loss.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tpdoc.documents.tiling import TilePlan
from tpdoc.errors import ConfigError
from tpdoc.model.config import ModelConfig
from tpdoc.model.pointer import PointerHead, Span, page_answer, point_pages, read_page
from tpdoc.model.projectors import build_projector
from tpdoc.model.prompts import PromptIds, PromptTemplate, tokenize_prompt
from tpdoc.model.sequence import Batch, Separators, assemble_batch, page_embeddings
from tpdoc.model.vision import ClipVisionTower, FeatureSelection, VisionFeatures, VisionTower


@dataclass(frozen=True)
class Generation:
    """One generated answer: token ids, their log-probabilities and the decoded text."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str

    @property
    def confidence(self) -> float:
        """Mean log-probability of the generated tokens (0 is certain)."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else float("-inf")


def build_vision_tower(config: ModelConfig) -> VisionTower:
    v = config.vision
    selection = FeatureSelection(v.select_layer, v.levels, v.select_feature)
    if v.type == "clip":
        return ClipVisionTower.from_config(v.config, selection)
    if v.type == "convnet":
        from tpdoc.model.convnet import ConvVisionTower

        return ConvVisionTower.from_config(v.config, selection)
    raise ConfigError(f"no vision tower of type {v.type!r}")  # pragma: no cover - validated


def build_language_model(text: dict[str, Any]) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**text))


class DocumentModel(nn.Module):
    """pages -> tiles -> vision -> packer -> LLM, for tpdoc's own and published weights."""

    def __init__(
        self,
        config: ModelConfig,
        vision: VisionTower,
        projector: nn.Module,
        language_model: nn.Module,
        tokenizer: Any,
    ) -> None:
        super().__init__()
        self.config = config
        self.vision = vision
        self.projector = projector
        self.language_model = language_model
        self.tokenizer = tokenizer
        self.template = PromptTemplate.load(config.prompt)
        self.separators = Separators.from_tokenizer(tokenizer)
        # Pointer models answer by pointing at their read-out (tpdoc.model.pointer); None: generate.
        self.pointer = (
            PointerHead(
                config.slot_grid,
                config.text["hidden_size"],
                readout_hidden=config.answer.readout_hidden,
                blank_bias=config.answer.blank_bias,
                words=(
                    (config.answer.question_vocab, config.answer.question_words)
                    if config.answer.question_words
                    else None
                ),
                pair=config.answer.end_given_start,
                packed_dim=config.projector.llm_dim,
            )  # fmt: skip
            if config.answer.kind == "pointer"
            else None
        )
        # Matmuls and convolutions in this dtype (torch.autocast) around the weights' own
        # dtype; the loader sets bfloat16 on CPUs with native bfloat16 (``resolve_autocast``).
        self.autocast: torch.dtype | None = None

    @classmethod
    def from_config(cls, config: ModelConfig, tokenizer: Any) -> DocumentModel:
        """Random-initialised model with the architecture ``config`` describes."""
        vocab = len(tokenizer)
        if config.text.get("vocab_size", vocab) < vocab:
            raise ConfigError(
                f"text vocab_size {config.text['vocab_size']} < tokenizer size {vocab}"
            )
        return cls(
            config,
            build_vision_tower(config),
            build_projector(config.projector),
            build_language_model(config.text),
            tokenizer,
        )

    @property
    def device(self) -> torch.device:
        return next(self.language_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.language_model.parameters()).dtype

    @property
    def precision(self) -> str:
        """The weights' dtype, and the autocast dtype the forward passes compute in."""
        name = str(self.dtype).removeprefix("torch.")
        if self.autocast is not None:
            name += "+autocast-" + str(self.autocast).removeprefix("torch.")
        return name

    def computing(self) -> contextlib.AbstractContextManager:
        """The context every inference forward runs in (``autocast``, when set)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """All views of one or more pages in one batched forward: ``[V, 3, T, T]`` ->
        packed visual tokens ``[V, Q, D]``."""
        return self.pack(self.features(pixel_values))

    def features(self, pixel_values: torch.Tensor) -> VisionFeatures:
        """The vision tower alone (``encode``'s first half, timed apart by callers):
        ``[V, 3, T, T]`` -> ``[V, G*G, C]``, ``[V, G*G, L*C]``."""
        with self.computing():
            return self.vision(pixel_values.to(self.device))

    def pack(self, feats: VisionFeatures) -> torch.Tensor:
        """The projector alone (``encode``'s second half): features -> ``[V, Q, D]``."""
        dtype = next(self.projector.parameters()).dtype
        with self.computing():
            packed = self.projector(
                features=feats.features.to(dtype),
                multi_level_features=feats.multi_level_features.to(dtype),
            )  # [V, Q, D]
        return packed.to(dtype)  # the weights' dtype, whatever autocast computed in

    def page_embeddings(self, packed: torch.Tensor, plan: TilePlan) -> torch.Tensor:
        """Packed views of one page ``[V, Q, D]`` -> the page in HD layout ``[P, D]``."""
        ids = torch.tensor([self.separators.tile, self.separators.row], device=packed.device)
        seps = self.language_model.get_input_embeddings()(ids)  # [2, D]
        return page_embeddings(packed.to(seps.dtype), plan, seps)

    def prompt_ids(self, question: str, *, short_answer: bool | None = None) -> PromptIds:
        short = self.config.short_answer if short_answer is None else short_answer
        return tokenize_prompt(self.tokenizer, self.template.render(question, short_answer=short))

    def build_batch(
        self,
        prompts: Sequence[PromptIds],
        pages: Sequence[torch.Tensor],
        answers: Sequence[str] | None = None,
        padding_side: str = "left",
    ) -> Batch:
        """Splice pages ``[P_i, D]`` into prompts; with ``answers`` (training) add them,
        followed by EOS, as the only labelled positions."""
        targets = None
        if answers is not None:
            eos = self.tokenizer.eos_token_id
            targets = [
                [*self.tokenizer(a, add_special_tokens=False).input_ids, eos] for a in answers
            ]
        embed = self.language_model.get_input_embeddings()
        return assemble_batch(embed, prompts, pages, targets, padding_side)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy over the labelled (answer) positions."""
        out = self.language_model(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            labels=batch.labels,
        )
        return out.loss

    @torch.no_grad()
    def point(self, questions: Sequence[str], pages: Sequence[tuple[torch.Tensor, TilePlan]]
              ) -> list[Span]:  # fmt: skip
        """A pointer model's answers (``tpdoc.model.pointer``): for each question, its page's
        packed views ``[V, Q, D]`` and plan, the best span on the page (text, log-probability,
        box as fractions of the page), or "not found" (``text`` None)."""
        if self.pointer is None:
            raise ConfigError(
                f"model {self.config.name!r} generates its answers; it has no pointer"
            )
        tok = self.tokenizer
        asks = []
        with self.computing():
            for question, (packed, plan) in zip(questions, pages, strict=True):
                read = read_page(self.pointer, packed.to(self.device), plan.rows, plan.cols)
                asks.append((self.pointer.question(tok, question), read, plan.cols))
            rows = point_pages(
                self.language_model, self.pointer, asks, tok.eos_token_id, self.separators.tile
            )
        t = self.config.tiling.tile_size
        return [
            page_answer(spans, t, plan.fit) for spans, (_, plan) in zip(rows, pages, strict=True)
        ]

    @torch.no_grad()
    def prefill(self, prompt: PromptIds, page: torch.Tensor) -> Prefix:
        """Run the language model over the prompt up to the end of a page's visual tokens
        (``prompt.before`` + page ``[P, D]``) and keep its KV cache, so that every question
        about the page (``generate(..., prefix=...)``) costs only its own tokens."""
        embed = self.language_model.get_input_embeddings()
        before = embed(torch.tensor(prompt.before, dtype=torch.long, device=page.device))
        inputs = torch.cat([before, page.to(before.dtype)]).unsqueeze(0)  # [1, L, D]
        name = cache_argument(self.language_model)
        with self.computing():
            out = self.language_model(inputs_embeds=inputs, use_cache=True)
        return Prefix(cache=out[name], length=inputs.shape[1], before=prompt.before)

    @torch.no_grad()
    def generate(
        self,
        batch: Batch,
        max_new_tokens: int = 32,
        *,
        prefix: Prefix | None = None,
        **kwargs: Any,
    ) -> list[Generation]:
        """Greedy answers for a left-padded batch, KV cache on.

        ``prefix`` (one sample whose inputs start with the prefilled positions): the
        language model continues from its cache, which is cropped back afterwards so the
        next question can reuse it. ``kwargs`` go to ``generate`` (e.g. a ``streamer``).
        """
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if prefix is not None:
            if len(batch.lengths) != 1 or batch.lengths[0] <= prefix.length:
                raise ConfigError(
                    f"a prefix of {prefix.length} positions continues one longer sample, got "
                    f"lengths {batch.lengths}"
                )
            kwargs[cache_argument(self.language_model)] = prefix.cache
        try:
            with self.computing():
                out = self.language_model.generate(
                    inputs_embeds=batch.inputs_embeds,
                    attention_mask=batch.attention_mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=True,
                    return_dict_in_generate=True,
                    output_scores=True,
                    eos_token_id=tok.eos_token_id,
                    pad_token_id=pad,
                    **kwargs,
                )
        finally:
            if prefix is not None:
                prefix.rewind()
        scores = self.language_model.compute_transition_scores(
            out.sequences, out.scores, normalize_logits=True
        )  # [B, n]
        results = []
        for ids, logp in zip(out.sequences.tolist(), scores.tolist(), strict=True):
            # The EOS that ends an answer is a generated token too: its probability is part
            # of the confidence, its id is not part of the text.
            n = ids.index(tok.eos_token_id) if tok.eos_token_id in ids else len(ids)
            token_ids = tuple(ids[:n])
            results.append(
                Generation(
                    token_ids=token_ids,
                    logprobs=tuple(logp[: min(n + 1, len(ids))]),
                    text=tok.decode(list(token_ids), skip_special_tokens=True).strip(),
                )
            )
        return results


@dataclass
class Prefix:
    """The language model's KV cache of a prompt up to the end of one page's visual tokens."""

    cache: Any  # the transformers cache object, ``length`` positions long between questions
    length: int
    before: tuple[int, ...]  # the prompt ids before the page: questions must share them

    def rewind(self) -> None:
        """Drop what a question added after the prefix."""
        extra = self.cache.get_seq_length() - self.length
        if extra > 0:
            self.cache.crop(-extra)

    @property
    def nbytes(self) -> int:
        return kv_bytes(self.cache)


def kv_bytes(cache: Any) -> int:
    """Bytes held by a transformers cache's key and value tensors."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def cache_argument(language_model: nn.Module) -> str:
    """What this transformers version calls the KV cache (``cache`` from 5.x on)."""
    params = inspect.signature(language_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
