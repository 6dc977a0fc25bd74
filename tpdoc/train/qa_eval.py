"""Stage 2's held-out evaluation, and which checkpoint is best.

In: the model and held-out page samples (fonts never trained on), optionally the packed
tokens' glyph head. Out: ``heldout_*`` metrics: exact match and ANLS of page answers and
of single-tile answers, tile and single-line CER, how much the right visual tokens help
(``heldout_look_gain``) and the packed tokens' character read-out accuracy; ``rank``
orders runs' metrics for keeping the best.
"""

from __future__ import annotations

import random

import torch

from tpdoc.model.document_model import DocumentModel
from tpdoc.train.glyphs import GlyphHead
from tpdoc.train.lines import line_runs, white_value
from tpdoc.train.packed_glyphs import page_packed_labels
from tpdoc.train.qa import READ_QUESTION, PageSample
from tpdoc.train.qa_losses import single_tile_plan


@torch.no_grad()
def looking_gain(model: DocumentModel, lines: list[tuple[torch.Tensor, str]]) -> float:
    """How much the right line's visual tokens lower its transcription loss (nats per
    character) against another line's: 0 while the language model does not look."""
    if len(lines) < 2:
        return 0.0
    tiles, texts = [t for t, _ in lines], [text for _, text in lines]
    prompts = [model.prompt_ids(READ_QUESTION)] * len(lines)
    right = model.loss(model.build_batch(prompts, tiles, answers=texts, padding_side="right"))
    other = tiles[1:] + tiles[:1]
    wrong = model.loss(model.build_batch(prompts, other, answers=texts, padding_side="right"))
    return (wrong - right).item()


@torch.no_grad()
def evaluate(model: DocumentModel, held_out: list[PageSample],
             packed_head: GlyphHead | None = None) -> dict[str, float]:  # fmt: skip
    from tpdoc.answering.anls import anls, cer, exact_match
    from tpdoc.train.glyphs import glyph_accuracy

    model.eval()
    em = an = n = tile_em = tile_n = 0.0
    errors = chars = 0.0
    glyphs_right = glyphs_total = 0
    line_errors = line_chars = 0.0
    lines: list[tuple[torch.Tensor, str]] = []
    tiling = model.config.tiling
    white = white_value(tiling.image_mean, tiling.image_std)
    for k, sample in enumerate(held_out):
        packed = model.encode(sample.views)
        if packed_head is not None:
            # How much of the printed text survives packing (a linear read-out per token).
            tiles = sample.plan.rows * sample.plan.cols
            labels = page_packed_labels(model, sample).to(packed.device)
            right, total, _ = glyph_accuracy(packed_head(packed[:tiles]), labels)
            glyphs_right, glyphs_total = glyphs_right + right, glyphs_total + total
        page = model.page_embeddings(packed, sample.plan)
        batch = model.build_batch(
            [model.prompt_ids(q) for q, _ in sample.qa], [page] * len(sample.qa)
        )
        for (_, answer), gen in zip(
            sample.qa, model.generate(batch, max_new_tokens=24), strict=True
        ):
            em += exact_match(gen.text, [answer])
            an += anls(gen.text, [answer])
            n += 1
        one_tile = single_tile_plan(sample.plan.tile_size)
        if sample.tile_qa:
            local = model.build_batch(
                [model.prompt_ids(q) for _, q, _ in sample.tile_qa],
                [model.page_embeddings(packed[i : i + 1], one_tile) for i, _, _ in sample.tile_qa],
            )
            for (_, _, answer), gen in zip(
                sample.tile_qa, model.generate(local, max_new_tokens=24), strict=True
            ):
                tile_em += exact_match(gen.text, [answer])
                tile_n += 1
        tile = model.page_embeddings(packed[sample.read_tile : sample.read_tile + 1], one_tile)
        read = model.generate(
            model.build_batch([model.prompt_ids(READ_QUESTION)], [tile]), max_new_tokens=96
        )[0]
        reference = sample.read_text[: len(read.text) + 16]
        errors += cer(read.text, reference) * max(1, len(reference))
        chars += max(1, len(reference))
        # One line alone (the same line every evaluation): the first sign of reading.
        views, runs = line_runs(sample, random.Random(k), 1, 1, white)
        texts = [run.text for run in runs]
        if texts:
            line_tile = model.page_embeddings(model.encode(views), one_tile)
            line = model.generate(
                model.build_batch([model.prompt_ids(READ_QUESTION)], [line_tile]),
                max_new_tokens=2 * len(texts[0]) + 8,
            )[0]
            line_errors += cer(line.text, texts[0]) * len(texts[0])
            line_chars += len(texts[0])
            lines.append((line_tile, texts[0]))
    look = looking_gain(model, lines)
    model.train()
    return {"heldout_look_gain": look, "heldout_em": em / max(1, n), "heldout_anls": an / max(1, n),
            "heldout_cer": errors / max(1, chars), "heldout_questions": n,
            "heldout_tile_em": tile_em / max(1, tile_n),
            "heldout_line_cer": line_errors / max(1, line_chars),
            "heldout_packed_glyph_acc": glyphs_right / max(1, glyphs_total)}  # fmt: skip


def rank(metrics: dict[str, float]) -> tuple[float, float, float]:
    """Which checkpoint is best: page answers first, then single-tile answers, then reading
    single lines."""
    return (
        metrics["heldout_anls"],
        metrics.get("heldout_tile_em", 0.0),
        -metrics.get("heldout_line_cer", metrics["heldout_cer"]),
    )
