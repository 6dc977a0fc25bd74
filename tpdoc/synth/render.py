"""Make synthetic pages look like real inputs: scan damage, and the characters' boxes.

In: a pymupdf page (rasterised with ``tpdoc.documents.pdf.rasterise_pdf_page``, the same
code that serves real PDFs), its pixel size and a ``random.Random``. Out: the page image
degraded like a scan (slight rotation, blur, JPEG, noise, uneven paper: ``degrade``, for
training), and the printed characters with their boxes in that image's pixel coordinates.
The boxes come from the PDF at training time only; nothing reads text at answer time.
``scan`` gives a page one fixed, seeded scan look instead (a grey raster, paper tone,
grain, tilt and blur set by a ``ScanLook``): the samples' receipt.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageChops, ImageFilter

from tpdoc.errors import ConfigError

MAX_ROTATION_DEG = 1.2
JPEG_QUALITY = (35, 90)
NOISE_SIGMA = (2.0, 9.0)
BLUR_RADIUS = (0.3, 0.9)


@dataclass(frozen=True)
class Glyph:
    char: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


# Some fonts (Lato, Liberation) map one glyph to several code points, and the text layer
# reads back the first: a hyphen as U+2010 or a soft hyphen, a space as a no-break space.
# The documents printed the ASCII character, so that is what the labels say.
PRINTED_AS = str.maketrans({"\xa0": " ", "\xad": "-", "\u2010": "-", "\u2011": "-"})


def as_printed(text: str) -> str:
    """The text layer's characters as the synthetic documents printed them."""
    return text.translate(PRINTED_AS)


def glyphs(page: Any, size: tuple[int, int], spaces: bool = False) -> list[Glyph]:
    """Every printed character with its box scaled to ``size`` (width, height); spaces
    (the text layer's own, as " ") only with ``spaces``."""
    sx, sy = size[0] / page.rect.width, size[1] / page.rect.height
    out = []
    for block in page.get_text("rawdict")["blocks"]:
        for line in block.get("lines", ()):
            for span in line["spans"]:
                for ch in span["chars"]:
                    c = as_printed(ch["c"])
                    if c.isspace() and not (spaces and c == " "):
                        continue
                    x0, y0, x1, y1 = ch["bbox"]
                    out.append(Glyph(c, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)))
    return out


def degrade(
    image: Image.Image, rng: random.Random, boxes: list[Glyph]
) -> tuple[Image.Image, list[Glyph]]:
    """Scan-like damage; a rotation moves the boxes with the page."""
    import numpy as np

    out, moved = image, boxes
    if rng.random() < 0.5:
        angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
        out = out.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(255, 255, 255))
        moved = _rotate_boxes(boxes, angle, out.size)
    if rng.random() < 0.4:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(*BLUR_RADIUS)))
    arr = np.asarray(out).astype(np.float32)
    if rng.random() < 0.4:  # uneven, slightly tinted paper
        h, w = arr.shape[:2]
        ramp = np.linspace(rng.uniform(-18, 0), rng.uniform(-18, 0), w, dtype=np.float32)
        arr = arr + ramp[None, :, None] + np.array([rng.uniform(-8, 4) for _ in range(3)])
    if rng.random() < 0.5:
        arr = arr + np.random.default_rng(rng.randrange(2**32)).normal(
            0, rng.uniform(*NOISE_SIGMA), arr.shape
        )
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        out.save(buffer, format="JPEG", quality=rng.randint(*JPEG_QUALITY))
        out = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return out, moved


def _rotate_boxes(boxes: list[Glyph], angle: float, size: tuple[int, int]) -> list[Glyph]:
    import math

    # PIL rotates counter-clockwise about the centre; y grows downwards.
    cx, cy = size[0] / 2, size[1] / 2
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    out = []
    for g in boxes:
        x, y = g.centre
        dx, dy = x - cx, y - cy
        nx, ny = cx + dx * cos + dy * sin, cy - dx * sin + dy * cos
        hw, hh = (g.box[2] - g.box[0]) / 2, (g.box[3] - g.box[1]) / 2
        out.append(Glyph(g.char, (nx - hw, ny - hh, nx + hw, ny + hh)))
    return out


@dataclass(frozen=True)
class ScanLook:
    """One scan look, the same for every page (only the grain and the tilt are seeded)."""

    dpi: int  # raster resolution
    paper_tone: int  # 8-bit grey of the paper (ink stays black)
    grain_levels: int  # grain darkens each pixel by 0..grain_levels-1 grey levels
    max_tilt_degrees: float
    blur_radius: float  # pixels

    def __post_init__(self) -> None:
        if not 0 < self.paper_tone <= 255 or self.grain_levels < 1 or self.dpi < 1:
            raise ConfigError(
                f"ScanLook needs dpi >= 1, 0 < paper_tone <= 255 and grain_levels >= 1; got "
                f"dpi={self.dpi}, paper_tone={self.paper_tone}, grain_levels={self.grain_levels}"
            )


def scan(page: Any, look: ScanLook, rng: random.Random) -> Image.Image:
    """``page`` rasterised in grey at ``look.dpi``, then toned, grained, tilted (the
    canvas grows to hold the corners) and softened."""
    import pymupdf

    pixmap = page.get_pixmap(dpi=look.dpi, colorspace=pymupdf.csGRAY, alpha=False)
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    paper = image.point(lambda v: v * look.paper_tone // 255)
    grain = Image.frombytes("L", paper.size, rng.randbytes(paper.width * paper.height))
    grain = grain.point(lambda v: v * look.grain_levels // 256)
    scanned = ImageChops.subtract(paper, grain)
    tilt = rng.uniform(-look.max_tilt_degrees, look.max_tilt_degrees)
    scanned = scanned.rotate(
        tilt, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=look.paper_tone
    )
    return scanned.filter(ImageFilter.GaussianBlur(look.blur_radius))
