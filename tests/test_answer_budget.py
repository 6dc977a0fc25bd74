"""Planning pages into a visual-token budget or the model's context: the largest tile cap
that fits, one tile as the last resort, a clear error below that."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.conftest import make_pdf, tiny_model_config
from tpdoc.answering.planning import SINGLE_TILE, BudgetError, ladder, plan_within
from tpdoc.answering.qa import DocumentQA
from tpdoc.documents.tiling import TilingConfig, plan_page
from tpdoc.errors import UsageError
from tpdoc.model.config import Geometry
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.sequence import count_page_positions

QUESTION = "What is the total?"


def geometry(max_tiles: int = 25, mode: str = "slice", scale: int = 2) -> Geometry:
    return Geometry(
        tiling=TilingConfig(tile_size=336, max_tiles=max_tiles, mode=mode),
        patch_grid=24,
        scale=scale,
        tokens_per_tile=(24 // scale) ** 2,
        tokens_per_tile_uncompressed=576,
    )


def tokens(height: int, width: int, cap: int) -> int:
    return count_page_positions(plan_page(height, width, TilingConfig(max_tiles=cap)), 144)


def test_ladder_goes_from_the_richest_to_one_tile_never_above_the_asked_cap():
    assert ladder(geometry(25)) == [(25, 2), (16, 2), (9, 2), (SINGLE_TILE, 2)]
    assert ladder(geometry(9)) == [(9, 2), (SINGLE_TILE, 2)]
    # A model trained for several scales: every cap, the finest scale first, none finer
    # than asked.
    assert ladder(geometry(16, scale=3), scales=(2, 3, 4)) == [
        (16, 3), (16, 4), (9, 3), (9, 4), (SINGLE_TILE, 3), (SINGLE_TILE, 4),
    ]  # fmt: skip
    assert ladder(geometry(9, mode="pad")) == [(9, 2)]


def test_the_largest_cap_that_fits_the_budget_is_chosen():
    h, w = 3368, 2380  # A4 at 288 dpi: 25 tiles cost the most
    costs = {cap: tokens(h, w, cap) for cap in (25, 16, 9)}
    assert costs[25] > costs[16] > costs[9]
    asked = plan_within(1, h, w, geometry(25), limit=costs[25])
    assert (asked.max_tiles, asked.planned_down) == (25, False)
    down = plan_within(1, h, w, geometry(25), limit=costs[16] + 1)
    assert (down.max_tiles, down.planned_down, down.visual_tokens) == (16, True, costs[16])
    assert plan_within(1, h, w, geometry(25), limit=costs[9]).max_tiles == 9
    one = plan_within(1, h, w, geometry(25), limit=costs[9] - 1)
    assert (one.max_tiles, one.plan.grid, one.plan.num_views) == (SINGLE_TILE, (1, 1), 1)
    assert one.visual_tokens == 144 + 1 and one.visual_tokens_uncompressed == 576 + 1
    assert one.plan.fit == (336, round(2380 * 336 / 3368))


def test_coarser_scales_are_tried_before_fewer_tiles():
    h, w = 3368, 2380
    plan = plan_within(1, h, w, geometry(25), limit=tokens(h, w, 25) - 1, scales=(2, 4))
    assert (plan.max_tiles, plan.scale) == (25, 4)


def test_even_one_tile_too_many_is_a_usage_error_that_says_so():
    with pytest.raises(BudgetError) as exc:
        plan_within(2, 1000, 800, geometry(9), limit=100, what="--budget 100")
    assert isinstance(exc.value, UsageError) and exc.value.exit_code == 2
    assert str(exc.value) == (
        "--budget 100: page 2 does not fit in 100 visual tokens, not even as one tile "
        "(145 tokens at scale 2)"
    )


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    return make_pdf(tmp_path_factory.mktemp("budget") / "doc.pdf", [(595.0, 842.0), (300.0, 300.0)])


def test_budget_plans_every_page_and_is_reported(scripted_model, pdf):
    qa = DocumentQA(scripted_model(lambda _t, _v: ("x", -1.0)), cache=False)
    full = qa.ask(pdf, QUESTION, all_pages=True)
    assert [p.plan.visual_tokens for p in full.pages] == [35, 50]  # 7 and 10 views of 4 + seps
    result = qa.ask(pdf, QUESTION, budget=40, all_pages=True)
    assert [(p.plan.max_tiles, p.plan.planned_down) for p in result.pages] == [
        (9, False), (SINGLE_TILE, True),
    ]  # fmt: skip
    assert result.budget == 40 and result.tokens.visual == 35 + 5
    data = result.to_json()
    assert data["budget"] == 40 and data["pages"][1]["max_tiles"] == SINGLE_TILE
    assert result.limited_by == data["limited_by"] == "budget"
    with pytest.raises(BudgetError, match="--budget 4: page 1 does not fit in 4 visual tokens"):
        qa.ask(pdf, QUESTION, budget=4)


def test_pages_that_overflow_the_context_are_planned_down_instead_of_failing(
    tiny_tokenizer, scripted_model, pdf
):
    model = scripted_model(lambda _t, _v: ("x", -1.0))
    prompt = len(model.prompt_ids(QUESTION))
    max_new = 4
    # Room for the A4 page (35 positions) but not for the square one (50).
    model.config = replace(
        model.config, text={**model.config.text, "max_position_embeddings": prompt + max_new + 40}
    )
    qa = DocumentQA(model, cache=False)
    result = qa.ask(pdf, QUESTION, all_pages=True, max_new_tokens=max_new)
    assert [p.plan.planned_down for p in result.pages] == [False, True]
    assert result.tokens.context <= result.tokens.context_limit
    assert result.limited_by == result.to_json()["limited_by"] == "context"
    # A budget larger than the context leaves: the context is still what planned it down.
    roomy = qa.ask(pdf, QUESTION, all_pages=True, max_new_tokens=max_new, budget=45)
    assert [p.plan.planned_down for p in roomy.pages] == [False, True]
    assert (roomy.budget, roomy.limited_by) == (45, "context")
    tight = qa.ask(pdf, QUESTION, all_pages=True, max_new_tokens=max_new, budget=36)
    assert tight.limited_by == "budget"
    model.config = replace(
        model.config, text={**model.config.text, "max_position_embeddings": prompt + max_new + 2}
    )
    with pytest.raises(BudgetError, match="the model's context .* page 1 does not fit"):
        qa.ask(pdf, QUESTION, max_new_tokens=max_new)
    model.config = replace(model.config, text={**model.config.text, "max_position_embeddings": 8})
    with pytest.raises(BudgetError, match="leave nothing of the model's context"):
        qa.ask(pdf, QUESTION, max_new_tokens=max_new)


def test_a_planned_down_page_runs_through_the_real_model(tiny_tokenizer, pdf):
    torch.manual_seed(0)
    model = DocumentModel.from_config(tiny_model_config(tiny_tokenizer), tiny_tokenizer).eval()
    result = DocumentQA(model, cache=False).ask(pdf, QUESTION, budget=10, max_new_tokens=2)
    assert {p.plan.plan.grid for p in result.pages} == {(1, 1)}
    assert result.tokens.visual == 2 * (4 + 1)


def test_nothing_is_limited_when_no_page_is_planned_down(scripted_model, pdf):
    qa = DocumentQA(scripted_model(lambda _t, _v: ("x", -1.0)), cache=False)
    result = qa.ask(pdf, QUESTION, all_pages=True)
    assert not any(p.plan.planned_down for p in result.pages)
    assert result.limited_by is None and result.to_json()["limited_by"] is None
