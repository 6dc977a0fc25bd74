"""Visual tokens per page: TokenPacker at scale 2/3/4 vs the uncompressed MLP projector.

In: every PDF and image under ``samples/`` and the folders or files given, planned (not
rendered) exactly as ``tpdoc ask`` plans a page, for tile caps 9/16/25 and scales 2/3/4,
in the published geometry (CLIP ViT-L/336 tiles) or the embedded model's (``--geometry
embedded``). Out: a table of tokens per page (min/median/max) for both projectors and
their ratio; ``--plot out.png`` draws tokens per page against page size.

    python -m benchmarks.tokens [PATH ...] [--debian] [--geometry published|embedded]
                                [--plot tokens.png] [--json]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import DEBIAN_PDFS, SAMPLES, emit, published_shape
from tpdoc.answering.planning import plan_within
from tpdoc.documents.pages import open_document
from tpdoc.errors import TpdocError
from tpdoc.model.config import Geometry
from tpdoc.weights.registry import load_geometry

CAPS = (9, 16, 25)
SCALES = (2, 3, 4)
SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


@dataclass(frozen=True)
class PageCount:
    file: str
    page: int
    pixels: int  # the size the grid is chosen for
    cap: int
    scale: int
    packed: int  # visual tokens in the LLM input, separators included
    uncompressed: int


def find_documents(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
    return found


def geometry_for(name: str) -> Geometry:
    if name == "published":
        return published_shape(layers=1).geometry
    return load_geometry()


def count_pages(
    documents: Sequence[Path], geometry: Geometry, caps=CAPS, scales=SCALES
) -> tuple[list[PageCount], list[str]]:
    """Every page at every cap and scale; unreadable files are listed, not fatal."""
    counts, skipped = [], []
    for path in documents:
        try:
            with open_document(path) as doc:
                sizes = [doc.info(n) for n in range(1, doc.page_count + 1)]
        except TpdocError as exc:
            skipped.append(f"{path}: {exc}")
            continue
        for info in sizes:
            for cap in caps:
                for scale in scales:
                    g = geometry.with_options(max_tiles=cap, scale=scale)
                    plan = plan_within(info.number, info.height, info.width, g)
                    counts.append(
                        PageCount(
                            str(path),
                            info.number,
                            info.height * info.width,
                            cap,
                            scale,
                            plan.visual_tokens,
                            plan.visual_tokens_uncompressed,
                        )
                    )
    return counts, skipped


def summarise(counts: Sequence[PageCount]) -> list[list]:
    rows = []
    for cap in sorted({c.cap for c in counts}):
        for scale in sorted({c.scale for c in counts}):
            group = [c for c in counts if c.cap == cap and c.scale == scale]
            if not group:
                continue
            packed = [c.packed for c in group]
            full = [c.uncompressed for c in group]
            ratio = sum(packed) / sum(full)
            rows.append(
                [
                    cap,
                    scale,
                    len(group),
                    min(packed),
                    statistics.median(packed),
                    max(packed),
                    min(full),
                    statistics.median(full),
                    max(full),
                    round(ratio, 4),
                    f"{1 - ratio:.1%}",
                ]
            )
    return rows


COLUMNS = [
    "max tiles",
    "scale",
    "pages",
    "packed min",
    "packed median",
    "packed max",
    "MLP min",
    "MLP median",
    "MLP max",
    "packed/MLP",
    "fewer tokens",
]


def plot(counts: Sequence[PageCount], target: Path, cap: int, scale: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    group = [c for c in counts if c.cap == cap]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    mp = [c.pixels / 1e6 for c in group if c.scale == scale]
    ax.scatter(
        mp,
        [c.uncompressed for c in group if c.scale == scale],
        s=12,
        label="MLP projector (uncompressed)",
    )
    for s in sorted({c.scale for c in group}):
        ax.scatter(
            [c.pixels / 1e6 for c in group if c.scale == s],
            [c.packed for c in group if c.scale == s],
            s=12,
            label=f"TokenPacker s={s}",
        )
    ax.set_xlabel("page size (megapixels, as planned)")
    ax.set_ylabel("visual tokens per page")
    ax.set_title(f"Visual tokens per page, up to {cap} tiles")
    ax.legend()
    fig.tight_layout()
    tmp = target.with_name(target.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(target)
    plt.close(fig)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tokens", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--debian", action="store_true", help="add the Debian manual PDFs")
    parser.add_argument("--geometry", choices=("published", "embedded"), default="published")
    parser.add_argument("--plot", type=Path, help="write a PNG of tokens vs page size")
    parser.add_argument("--plot-cap", type=int, default=9, choices=CAPS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    roots = [SAMPLES, *args.paths, *(p for p in DEBIAN_PDFS if args.debian and p.is_file())]
    documents = find_documents(roots)
    geometry = geometry_for(args.geometry)
    counts, skipped = count_pages(documents, geometry)
    notes = [
        f"{len(documents)} files, {len({(c.file, c.page) for c in counts})} pages; "
        f"{args.geometry} geometry: {geometry.tile_size}px tiles, "
        f"{geometry.patch_grid}x{geometry.patch_grid} patches per tile; tokens include "
        "the row and tile separators",
        *(f"skipped {s}" for s in skipped),
    ]
    if args.plot:
        notes.append(f"plot: {plot(counts, args.plot, args.plot_cap, 2)}")
    emit(
        "Visual tokens per page: TokenPacker vs MLP",
        COLUMNS,
        summarise(counts),
        as_json=args.json,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
