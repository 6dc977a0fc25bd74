"""The shipped embedded model reads the samples' pixels (skipped until its weights ship)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from tpdoc.weights.checkpoint import WEIGHTS_FILE
from tpdoc.weights.registry import DEFAULT_MODEL, EMBEDDED_DIR

SAMPLES = Path(__file__).parent.parent / "samples"
SHIPPED = (EMBEDDED_DIR / DEFAULT_MODEL / WEIGHTS_FILE).is_file()
READ_CER_BOUND = 0.6  # a pointer model's read-out of the sample lines (measured: see card)


def sample_views(model, pdf: Path, number: int, count: int):
    """``count`` single lines of a sample page, each alone on its tile ``[3, T, T]``, with
    the printed text."""
    return sample_lines(model, pdf, number, count, return_views=True)


def sample_lines(model, pdf: Path, number: int, count: int, return_views: bool = False):
    """``count`` single lines of a sample page, each shown alone on its tile as the model's
    visual tokens ``[Q, D]``, with the printed text (from the PDF, for checking only)."""
    import pymupdf

    from tpdoc.documents.pages import PLAN_DPI
    from tpdoc.documents.pdf import PDF_POINTS_PER_INCH
    from tpdoc.documents.pdf import rasterise_pdf_page as rasterise
    from tpdoc.documents.tiling import plan_page, tile_pixels
    from tpdoc.synth.render import glyphs
    from tpdoc.train.lines import keep_box, white_value
    from tpdoc.train.qa import tile_lines
    from tpdoc.train.qa_losses import single_tile_plan

    tiling = model.config.tiling
    with pymupdf.open(pdf) as doc:
        page = doc[number - 1]
        scale = PLAN_DPI / PDF_POINTS_PER_INCH
        height, width = round(page.rect.height * scale), round(page.rect.width * scale)
        plan = plan_page(height, width, tiling)
        size = (plan.fit[1], plan.fit[0])
        views = tile_pixels(rasterise(page, size), plan, tiling)
        found = glyphs(page, size)
    t = tiling.tile_size
    white = white_value(tiling.image_mean, tiling.image_std)
    lines = []
    for i in range(plan.rows * plan.cols):
        x0, y0 = (i % plan.cols) * t, (i // plan.cols) * t
        inside = [g for g in found if x0 <= g.centre[0] < x0 + t and y0 <= g.centre[1] < y0 + t]
        for line in tile_lines(inside, x0, y0):
            if len(line.text) >= 6:
                lines.append((keep_box(views[i], line.box, white), line.text))
    picked = random.Random(0).sample(lines, count)
    if return_views:
        return [view for view, _ in picked], [text for _, text in picked]
    with torch.no_grad():
        packed = model.encode(torch.stack([view for view, _ in picked]))
    one_tile = single_tile_plan(t)
    return [(model.page_embeddings(packed[i : i + 1], one_tile), text)
            for i, (_, text) in enumerate(picked)]  # fmt: skip


@pytest.mark.skipif(not SHIPPED, reason="embedded weights not shipped yet")
def test_the_shipped_model_reads_the_pixels_of_the_sample_lines():
    """A generating model: each sample line's own visual tokens make its text far likelier
    than another line's (its words come from the page, not from its prior). A pointer
    model: its read-out of each line, shown alone, is close to the printed text."""
    from tpdoc.weights.checkpoint import load_model

    model = load_model(EMBEDDED_DIR / DEFAULT_MODEL)
    if model.pointer is None:
        from tpdoc.train.qa_eval import looking_gain

        lines = sample_lines(model, SAMPLES / "report.pdf", 1, 12)
        assert looking_gain(model, lines) > 0.5  # nats per character
        return
    from benchmarks.accuracy import read_out
    from tpdoc.answering.anls import cer

    views, texts = sample_views(model, SAMPLES / "report.pdf", 1, 12)
    errors = [cer(read_out(model, view[None]), " ".join(text.split())) for view, text in
              zip(views, texts, strict=True)]  # fmt: skip
    assert sum(errors) / len(errors) < READ_CER_BOUND, errors
