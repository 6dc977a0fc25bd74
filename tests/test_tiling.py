"""Dynamic patch splitting against the published rule, written out plainly here."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tpdoc.documents.tiling import (
    CLIP_MEAN,
    CLIP_STD,
    GRID_CANDIDATES,
    TilingConfig,
    choose_grid,
    fit_size,
    pad_pixels,
    plan_page,
    tile_pixels,
)
from tpdoc.errors import ConfigError

T = 336


def rule_scores(h: int, w: int, grids) -> list[float]:
    """The grid score of the issue, in float64, one grid at a time."""
    scores = []
    for rows, cols in grids:
        gh, gw = rows * T, cols * T
        r = min(gh / h, gw / w)
        cover = round(h * r) * round(w * r) / (gh * gw)
        eh, ew = 1.4 * h, 1.4 * w
        inter = min(gh, eh) * min(gw, ew)
        iou = inter / (gh * gw + eh * ew - inter)
        scores.append(cover + 0.1 * iou)
    return scores


def test_candidate_lists_follow_the_published_order():
    assert len(GRID_CANDIDATES[9]) == 23
    assert GRID_CANDIDATES[16][: len(GRID_CANDIDATES[9])] == GRID_CANDIDATES[9]
    assert GRID_CANDIDATES[25][: len(GRID_CANDIDATES[16])] == GRID_CANDIDATES[16]
    assert GRID_CANDIDATES[16][23:] == (
        (2, 5), (5, 2), (2, 6), (6, 2), (3, 4), (4, 3), (2, 7), (7, 2), (3, 5), (5, 3),
        (2, 8), (8, 2), (4, 4),
    )  # fmt: skip
    assert GRID_CANDIDATES[25][-1] == (5, 5) and len(GRID_CANDIDATES[25]) == 57
    for cap, grids in GRID_CANDIDATES.items():
        assert all(r * c <= cap for r, c in grids)


@pytest.mark.parametrize("cap", [9, 16, 25])
def test_grid_choice_matches_the_rule_on_random_sizes(cap):
    rng = random.Random(cap)
    grids = GRID_CANDIDATES[cap]
    for _ in range(1500):
        h, w = rng.randint(16, 6000), rng.randint(16, 6000)
        scores = rule_scores(h, w, grids)
        best = max(scores)
        expected = grids[scores.index(best)]  # first maximum: ties go to the earlier grid
        got = choose_grid(h, w, T, cap)
        if got != expected:
            # Only a float32 near-tie may resolve differently from this float64 rewrite.
            assert best - scores[grids.index(got)] < 1e-6, (h, w, got, expected)


def test_known_pages():
    assert choose_grid(336, 336, T, 9) == (1, 1)
    assert choose_grid(480, 480, T, 9) == (2, 2)  # 1.4 x 480 = 672: the published upscaling
    assert choose_grid(1684, 1191, T, 9) == (3, 2)  # A4 at 144 dpi
    assert choose_grid(1684, 1191, T, 25) == (6, 4)
    assert choose_grid(100, 3000, T, 9) == (1, 9)


def test_fit_size_keeps_aspect_inside_canvas():
    rng = random.Random(1)
    for _ in range(500):
        h, w = rng.randint(50, 4000), rng.randint(50, 4000)
        rows, cols = choose_grid(h, w, T, 16)
        fh, fw = fit_size(h, w, rows, cols, T)
        assert fh <= rows * T and fw <= cols * T
        assert fh == rows * T or fw == cols * T  # one side fills the canvas
        assert abs(fh / fw - h / w) <= (h / w) * (1 / min(fh, fw)) + 1e-9


def reference_views(image: Image.Image, rows: int, cols: int) -> torch.Tensor:
    """The published preprocessing, step by step with explicit loops."""
    arr = torch.tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1) / 255
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    page = ((arr - mean) / std)[None]
    h, w = page.shape[-2:]
    fh, fw = fit_size(h, w, rows, cols, T)
    resized = F.interpolate(page, size=(fh, fw), mode="bilinear", align_corners=False)
    canvas = torch.zeros(1, 3, rows * T, cols * T)
    canvas[:, :, :fh, :fw] = resized
    views = []
    for i in range(rows):
        for j in range(cols):
            views.append(canvas[:, :, i * T : (i + 1) * T, j * T : (j + 1) * T])
    if len(views) > 1:
        if T / h <= T / w:
            gh, gw = T, min(T, round(w * T / h))
        else:
            gh, gw = min(T, round(h * T / w)), T
        small = F.interpolate(canvas, size=(gh, gw), mode="bilinear", align_corners=False)
        view = torch.zeros(1, 3, T, T)
        view[:, :, :gh, :gw] = small
        views.append(view)
    return torch.cat(views)


@pytest.mark.parametrize("size", [(500, 700), (1191, 1684), (1500, 300), (333, 333), (900, 2000)])
def test_views_equal_the_published_preprocessing(size):
    w, h = size
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    config = TilingConfig(max_tiles=16)
    plan = plan_page(h, w, config)
    got = tile_pixels(image, plan, config)
    assert got.shape == (plan.num_views, 3, T, T)
    torch.testing.assert_close(got, reference_views(image, plan.rows, plan.cols), rtol=0, atol=0)


def test_rendering_at_the_fitted_size_needs_no_resampling():
    config = TilingConfig()
    h, w = 1684, 1191
    plan = plan_page(h, w, config)
    rh, rw = plan.fit  # what a PDF page is rasterised at (tpdoc.documents.prepare.prepare_page)
    image = Image.new("RGB", (rw, rh), (10, 200, 30))
    views = tile_pixels(image, plan, config)
    expected = (torch.tensor([10, 200, 30]) / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(
        CLIP_STD
    )
    # The page's pixels land unchanged in the top-left tile; the canvas beyond is zero.
    torch.testing.assert_close(views[0, :, 5, 5], expected)
    assert plan.fit == (950, 672)  # fills the width; the canvas below row 950 is padding
    bottom_left = (plan.rows - 1) * plan.cols
    assert torch.count_nonzero(views[bottom_left, :, -1, :]) == 0
    assert torch.count_nonzero(views[bottom_left, :, 0, :]) == 3 * T


def test_tiles_are_row_major_and_boxes_cover_the_page():
    config = TilingConfig()
    h, w = 1684, 1191
    plan = plan_page(h, w, config)
    assert plan.grid == (3, 2) and plan.num_views == 7 and plan.has_global_view
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in plan.boxes)
    assert area == pytest.approx(h * w)
    # A dark block at the bottom-right of the page lands in the last tile, not the first.
    image = Image.new("RGB", (w, h), "white")
    image.paste((0, 0, 0), (w - 200, h - 400, w - 10, h - 300))
    views = tile_pixels(image, plan, config)
    dark = [(views[i] < -1).any().item() for i in range(6)]
    assert dark == [False, False, False, False, False, True]
    x0, y0, x1, y1 = plan.boxes[5]
    assert x0 <= w - 200 < x1 and y0 <= h - 400 < y1


def test_single_tile_page_has_no_global_view():
    plan = plan_page(300, 320, TilingConfig())
    assert plan.grid == (1, 1) and plan.num_views == 1


def test_pad_mode_equals_the_clip_image_processor():
    from transformers import CLIPImageProcessor

    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (420, 300, 3), dtype=np.uint8))
    config = TilingConfig(mode="pad")
    processor = CLIPImageProcessor(size={"shortest_edge": T}, crop_size={"height": T, "width": T})
    background = tuple(int(m * 255) for m in CLIP_MEAN)
    square = Image.new("RGB", (420, 420), background)
    square.paste(image, ((420 - 300) // 2, 0))
    expected = processor(square, return_tensors="pt")["pixel_values"][0]
    got = pad_pixels(image, config)
    assert got.shape == (3, T, T)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    plan = plan_page(420, 300, config)
    assert plan.num_views == 1 and not plan.has_global_view
    assert tile_pixels(image, plan, config).shape == (1, 3, T, T)


def test_config_validation_shows_values():
    with pytest.raises(ConfigError, match="10"):
        TilingConfig(max_tiles=10)
    with pytest.raises(ConfigError, match="'square'"):
        TilingConfig(mode="square")
    with pytest.raises(ConfigError, match="0x5"):
        choose_grid(0, 5, T, 9)
