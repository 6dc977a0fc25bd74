"""Dynamic patch splitting (TokenPacker-HD) and the single-view 'pad' mode of LLaVA-1.5.

In: a page's pixel size (for planning) or its RGB image (for pixels) and a ``TilingConfig``.
Out: a ``TilePlan`` (grid, tile boxes in page coordinates, global view or not, fitted size),
computable without any model, and the normalised tile tensor ``[n_views, 3, T, T]`` the
vision tower takes. Grid choice, fitting and the global view follow the published
TokenPacker-HD preprocessing exactly, quirks included, since its checkpoints were trained
on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tpdoc.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Candidate grids (rows, cols) in the published order; ties go to the earlier grid.
# The 25 list repeats (4, 6) and (6, 4) as published; repeats never win a tie.
_GRIDS_9: tuple[tuple[int, int], ...] = (
    (1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (1, 4), (4, 1), (1, 5), (5, 1),
    (1, 6), (6, 1), (2, 3), (3, 2), (1, 7), (7, 1), (4, 2), (2, 4), (1, 8), (8, 1),
    (3, 3), (1, 9), (9, 1),
)  # fmt: skip
_GRIDS_16 = _GRIDS_9 + (
    (2, 5), (5, 2), (2, 6), (6, 2), (3, 4), (4, 3), (2, 7), (7, 2), (3, 5), (5, 3),
    (2, 8), (8, 2), (4, 4),
)  # fmt: skip
_GRIDS_25 = _GRIDS_16 + (
    (3, 6), (6, 3), (2, 9), (9, 2), (4, 5), (5, 4), (2, 10), (10, 2), (3, 7), (7, 3),
    (11, 2), (2, 11), (4, 6), (6, 4), (12, 2), (2, 12), (3, 8), (8, 3), (4, 6), (6, 4),
    (5, 5),
)  # fmt: skip
GRID_CANDIDATES: dict[int, tuple[tuple[int, int], ...]] = {
    9: _GRIDS_9,
    16: _GRIDS_16,
    25: _GRIDS_25,
}

# Published scoring constants: the page box is enlarged by this factor for the IoU term,
# which is weighted by IOU_WEIGHT; IOU_EPS guards the division as the reference does.
PAGE_BOX_ENLARGE = 1.4
IOU_WEIGHT = 0.1
IOU_EPS = 1e-5

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MODES = ("slice", "pad")


@dataclass(frozen=True)
class TilingConfig:
    """How pages become vision-tower inputs.

    ``mode='slice'`` is TokenPacker-HD's dynamic splitting with at most ``max_tiles`` tiles
    plus a global view; ``mode='pad'`` is LLaVA-1.5's single padded square view.
    """

    tile_size: int = 336
    max_tiles: int = 9
    mode: str = "slice"
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"tiling mode must be one of {MODES}, got {self.mode!r}")
        if self.max_tiles not in GRID_CANDIDATES:
            raise ConfigError(
                f"max_tiles must be one of {sorted(GRID_CANDIDATES)}, got {self.max_tiles}"
            )
        if self.tile_size <= 0:
            raise ConfigError(f"tile_size must be positive, got {self.tile_size}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ConfigError(
                f"image_mean and image_std need 3 channels, got {self.image_mean}, {self.image_std}"
            )
        # JSON gives lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "image_mean", tuple(float(m) for m in self.image_mean))
        object.__setattr__(self, "image_std", tuple(float(s) for s in self.image_std))


@dataclass(frozen=True)
class TilePlan:
    """Where a page's tiles come from; no pixels, no model.

    ``height``/``width`` is the page size the grid was chosen for. ``fit`` is the size the
    page is resized to inside the ``rows*T x cols*T`` canvas; ``boxes`` are the tiles'
    regions in page pixel coordinates ``(x0, y0, x1, y1)``, row-major, clipped to the page
    (a tile over pure padding has an empty box).
    """

    height: int
    width: int
    rows: int
    cols: int
    tile_size: int
    mode: str
    fit: tuple[int, int]  # (height, width)
    boxes: tuple[tuple[float, float, float, float], ...] = field(repr=False)

    @property
    def grid(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def has_global_view(self) -> bool:
        return self.mode == "slice" and self.rows * self.cols > 1

    @property
    def num_views(self) -> int:
        """Tiles through the vision tower, the global view included."""
        return self.rows * self.cols + int(self.has_global_view)


def choose_grid(height: int, width: int, tile_size: int, max_tiles: int) -> tuple[int, int]:
    """The published grid choice for an ``height x width`` image.

    Computed with torch in float32, the published arithmetic, so that near-ties resolve
    exactly as they did for the checkpoints.
    """
    import torch

    if height <= 0 or width <= 0:
        raise ConfigError(f"page size must be positive, got {height}x{width}")
    candidates = GRID_CANDIDATES.get(max_tiles)
    if candidates is None:
        raise ConfigError(f"max_tiles must be one of {sorted(GRID_CANDIDATES)}, got {max_tiles}")
    grids = torch.tensor(candidates)  # [K, 2] (rows, cols), int64
    extent = grids * tile_size  # [K, 2] canvas (h, w) in pixels
    area = extent[:, 0] * extent[:, 1]  # [K]
    page = torch.tensor([height, width])  # [2]
    ratio = (extent / page).min(dim=-1).values  # [K] float32
    cover = torch.round(height * ratio) * torch.round(width * ratio) / area
    enlarged = page * PAGE_BOX_ENLARGE  # [2] float32
    inter = torch.minimum(extent, enlarged).clamp(min=0).prod(dim=-1)  # [K]
    union = area + enlarged.prod() - inter
    score = cover + (inter / (union + IOU_EPS)) * IOU_WEIGHT
    return candidates[int(torch.argmax(score))]  # argmax returns the first maximum


def fit_size(height: int, width: int, rows: int, cols: int, tile_size: int) -> tuple[int, int]:
    """Aspect-preserving size of the page inside the ``rows x cols`` canvas, as published."""
    canvas_h, canvas_w = rows * tile_size, cols * tile_size
    h_ratio, w_ratio = canvas_h / height, canvas_w / width
    if h_ratio <= w_ratio:
        return canvas_h, min(canvas_w, round(width * h_ratio))
    return min(canvas_h, round(height * w_ratio)), canvas_w


def plan_page(height: int, width: int, config: TilingConfig) -> TilePlan:
    """Plan the tiles of an ``height x width`` page (pixels) under ``config``."""
    t = config.tile_size
    if config.mode == "pad":
        # One view of the whole page, centred on a square of its long side scaled to T.
        scale = t / max(height, width)
        fit = (round(height * scale), round(width * scale))
        return TilePlan(
            height, width, 1, 1, t, "pad", fit, ((0.0, 0.0, float(width), float(height)),)
        )
    rows, cols = choose_grid(height, width, t, config.max_tiles)
    fit = fit_size(height, width, rows, cols, t)
    sy, sx = fit[0] / height, fit[1] / width
    boxes = tuple(
        _clip_box((c * t / sx, r * t / sy, (c + 1) * t / sx, (r + 1) * t / sy), height, width)
        for r in range(rows)
        for c in range(cols)
    )
    return TilePlan(height, width, rows, cols, t, "slice", fit, boxes)


def global_view_size(height: int, width: int, tile_size: int) -> tuple[int, int]:
    """Size of the global view inside its T x T canvas: the page's aspect ratio, as published."""
    h_ratio, w_ratio = tile_size / height, tile_size / width
    if h_ratio <= w_ratio:
        return tile_size, min(tile_size, round(width * h_ratio))
    return min(tile_size, round(height * w_ratio)), tile_size


def to_normalized_tensor(image: Image.Image, config: TilingConfig) -> torch.Tensor:
    """RGB image -> ``[3, H, W]`` float32 in the tower's normalised space."""
    import numpy as np
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)  # [3, H, W]
    mean = torch.tensor(config.image_mean).view(3, 1, 1)
    std = torch.tensor(config.image_std).view(3, 1, 1)
    return (pixels - mean) / std


def tile_pixels(image: Image.Image, plan: TilePlan, config: TilingConfig) -> torch.Tensor:
    """Cut a page into its planned views: ``[num_views, 3, T, T]``, tiles row-major then global.

    ``image`` may be the page at its planned size or already rasterised at ``plan.fit``;
    either way the result is what the published preprocessing gives for the page.
    """
    if plan.mode == "pad":
        return pad_pixels(image, config).unsqueeze(0)
    import torch
    import torch.nn.functional as F

    t = plan.tile_size
    page = to_normalized_tensor(image, config).unsqueeze(0)  # [1, 3, H, W]
    if tuple(page.shape[-2:]) != plan.fit:
        page = F.interpolate(page, size=plan.fit, mode="bilinear", align_corners=False)
    canvas = page.new_zeros(1, 3, plan.rows * t, plan.cols * t)  # zero = mean colour
    canvas[:, :, : plan.fit[0], : plan.fit[1]] = page
    # [1, 3, rows*T, cols*T] -> [rows*cols, 3, T, T], row-major
    tiles = canvas.view(3, plan.rows, t, plan.cols, t).permute(1, 3, 0, 2, 4).reshape(-1, 3, t, t)
    if not plan.has_global_view:
        return tiles
    # Published quirk: the padded canvas (not the page) is resized to the page's aspect.
    gh, gw = global_view_size(plan.height, plan.width, t)
    small = F.interpolate(canvas, size=(gh, gw), mode="bilinear", align_corners=False)
    view = canvas.new_zeros(1, 3, t, t)
    view[:, :, :gh, :gw] = small
    return torch.cat([tiles, view], dim=0)  # [rows*cols + 1, 3, T, T]


def pad_pixels(image: Image.Image, config: TilingConfig) -> torch.Tensor:
    """LLaVA-1.5 'pad': square canvas of the tower's mean colour, centred page, then the CLIP
    processor's bicubic resize to T x T, rescale and normalise. Returns ``[3, T, T]``."""
    from PIL import Image as PILImage

    image = image.convert("RGB")
    width, height = image.size
    if width != height:
        side = max(width, height)
        background = tuple(int(m * 255) for m in config.image_mean)
        square = PILImage.new("RGB", (side, side), background)
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        image = square
    t = config.tile_size
    if image.size != (t, t):
        image = image.resize((t, t), resample=PILImage.Resampling.BICUBIC)
    return to_normalized_tensor(image, config)


def _clip_box(box: Sequence[float], height: int, width: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    return (float(x0), float(y0), float(x1), float(y1))
