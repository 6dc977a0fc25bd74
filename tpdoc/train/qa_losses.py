"""The losses of one stage-2 step: a page's questions, transcriptions and glyphs.

In: the model being trained, a page sample (``tpdoc.train.qa``) and the glyph heads. Out:
the losses by name (``WEIGHTS`` says how much each counts): questions packed after the
page (``qa``), ``LINE_READS`` runs of its lines shown alone (``lines``), up to
``READ_TILES`` of its tiles transcribed (``read``), the questions one tile holds asked
on that tile alone (``tile_qa``), guided attention while it writes those (``align``,
``tpdoc.train.alignment``), and the glyph losses of the tower cells (``glyph``) and of
the packed tokens (``packed_glyph``).
"""

from __future__ import annotations

import random

import torch

from tpdoc.documents.tiling import TilePlan
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.sequence import IGNORE_INDEX, assemble_batch
from tpdoc.train.alignment import attention_loss, eager_attention, token_targets
from tpdoc.train.glyphs import GlyphHead, glyph_loss
from tpdoc.train.lines import line_runs, white_value
from tpdoc.train.packed_glyphs import PACKED_NONE_WEIGHT, page_packed_labels
from tpdoc.train.qa import MAX_READ_CHARS, READ_QUESTION, PageSample, TextLine, joined
from tpdoc.train.run_glyphs import NONE_WEIGHT

READ_TILES = 8  # tiles transcribed per page (the language model is cheap beside the tower)
LINE_READS = 8  # runs of lines transcribed per page (each costs one more tower pass)
MAX_LINES = 3
WEIGHTS = {"qa": 1.0, "read": 0.5, "lines": 1.0, "align": 0.5, "tile_qa": 1.0, "glyph": 0.3,
           "packed_glyph": 1.0}  # fmt: skip


def single_tile_plan(t: int) -> TilePlan:
    """The plan of a page that is one ``t x t`` tile: a tile asked about on its own."""
    return TilePlan(t, t, 1, 1, t, "slice", (t, t), ((0.0, 0.0, float(t), float(t)),))


def packed_qa(model: DocumentModel, qa: list[tuple[str, str]]):
    """All questions about a page in one sequence: the page is attended once.

    The first question is laid out exactly as at answer time; each later one follows the
    previous answer's EOS. Only answer tokens (and their EOS) carry a loss.
    """
    tok = model.tokenizer
    first = model.prompt_ids(qa[0][0])
    ids: list[int] = []
    labels: list[int] = []
    for i, (question, answer) in enumerate(qa):
        if i:
            after = list(model.prompt_ids(question).after)
            ids += after
            labels += [IGNORE_INDEX] * len(after)
        answer_ids = [*tok(answer, add_special_tokens=False).input_ids, tok.eos_token_id]
        ids += answer_ids
        labels += answer_ids
    return first, ids, labels


def read_losses(model: DocumentModel, packed: torch.Tensor, runs: list[TextLine],
                guide: bool = True, questions: list[str] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """Single tiles ``[n, Q, D]``, each with the ``TextLine`` to write (its text, or a
    question's answer, with the characters' centres): the cross-entropy and, with
    ``guide``, the guided-attention loss (``tpdoc.train.alignment``). Without
    ``questions`` the model is asked to read the tile."""
    one_tile = single_tile_plan(model.config.tiling.tile_size)
    prompts = [model.prompt_ids(q) for q in questions or [READ_QUESTION] * len(runs)]
    pages = [model.page_embeddings(packed[i : i + 1], one_tile) for i in range(len(runs))]
    texts = [run.text for run in runs]
    batch = model.build_batch(prompts, pages, answers=texts, padding_side="right")
    if not guide:
        return model.loss(batch), None
    with eager_attention(model.language_model):
        out = model.language_model(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
            labels=batch.labels, output_attentions=True,
        )  # fmt: skip
    p = model.config.projector
    targets = []
    for run in runs:
        ids = model.tokenizer(run.text, add_special_tokens=False).input_ids
        per_char = [len(c.encode("utf-8")) for c in run.text]
        # Byte tokens map to characters only without merges; other tokenizers go unguided.
        fits = len(ids) == sum(per_char) and len(run.centres) == len(run.text)
        targets.append(token_targets(run, one_tile.tile_size, p.out_grid, per_char) if fits else [])
    befores = [len(prompt.before) for prompt in prompts]
    starts = [
        b + page.shape[0] + len(prompt.after)
        for b, page, prompt in zip(befores, pages, prompts, strict=True)
    ]
    align = attention_loss(out.attentions, starts, befores, targets)
    return out.loss, align


def answer_line(lines: list[TextLine], answer: str) -> TextLine:
    """The answer with its characters' centres when it is printed exactly once in the
    tile's text, else without (unguided)."""
    text = joined(lines)
    at = text.text.find(answer)
    if at < 0 or text.text.count(answer) != 1:
        return TextLine(text.box, answer)
    return TextLine(text.box, answer, text.centres[at : at + len(answer)])


def step_loss(model: DocumentModel, head: GlyphHead | None, sample: PageSample, autocast,
              rng: random.Random, packed_head: GlyphHead | None = None, *,
              ask: bool = True, guide: bool = True) -> dict[str, torch.Tensor]:  # fmt: skip
    """One page: QA loss (questions packed after the page), transcription of its tiles and
    of runs of their lines, the questions that single tiles answer, the glyph loss of every
    tile (unless the tower is frozen) and of every packed token. ``ask=False`` leaves the
    questions out (the reading-only start). Returns the losses by name."""
    tiles = sample.plan.rows * sample.plan.cols
    device = model.device  # samples come from the data workers on the CPU
    losses: dict[str, torch.Tensor] = {}
    aligns: list[torch.Tensor | None] = []
    with autocast():
        tiling = model.config.tiling
        white = white_value(tiling.image_mean, tiling.image_std)
        views, runs = line_runs(sample, rng, LINE_READS, MAX_LINES, white)
        if runs:
            with torch.set_grad_enabled(head is not None and torch.is_grad_enabled()):
                line_feats = model.vision(views.to(device))
            line_packed = model.projector(
                features=line_feats.features, multi_level_features=line_feats.multi_level_features
            )  # [n, Q, D]
            losses["lines"], align = read_losses(model, line_packed, runs, guide)
            aligns.append(align)
        with torch.set_grad_enabled(head is not None and torch.is_grad_enabled()):
            feats = model.vision(sample.views.to(device))  # [V, N, C], [V, N, L*C]
        packed = model.projector(
            features=feats.features, multi_level_features=feats.multi_level_features
        )  # [V, Q, D]
        if head is not None:
            losses["glyph"] = glyph_loss(
                head(feats.features[:tiles]), sample.glyph_labels.to(device), NONE_WEIGHT
            )
        if packed_head is not None:
            labels = page_packed_labels(model, sample).to(device)
            losses["packed_glyph"] = glyph_loss(
                packed_head(packed[:tiles]), labels, PACKED_NONE_WEIGHT
            )
        if ask:
            page = model.page_embeddings(packed, sample.plan)
            prompt, ids, labels = packed_qa(model, sample.qa)
            embed = model.language_model.get_input_embeddings()
            qa = assemble_batch(embed, [prompt], [page], [ids], "right", [labels])
            losses["qa"] = model.loss(qa)
        reads = rng.sample(sample.tile_texts, min(READ_TILES, len(sample.tile_texts)))
        if reads:
            picked = [i for i, _ in reads]
            whole = [joined(sample.lines[i], MAX_READ_CHARS) for i in picked]
            losses["read"], align = read_losses(model, packed[picked], whole, guide)
            aligns.append(align)
        if ask and sample.tile_qa:
            # Where to look is known for these answers too: the value's characters.
            picked = [i for i, _, _ in sample.tile_qa]
            answers = [answer_line(sample.lines[i], a) for i, _, a in sample.tile_qa]
            questions = [q for _, q, _ in sample.tile_qa]
            losses["tile_qa"], align = read_losses(model, packed[picked], answers, guide, questions)
            aligns.append(align)
    guided = [a for a in aligns if a is not None]
    if guided:
        losses["align"] = torch.stack(guided).mean()
    return losses
