"""What every benchmark shares: the machine line, the published model shape, output.

In: results as a title, column names and rows. Out: a rich table on stdout (with the
machine it ran on as its caption) or, with ``--json``, one JSON object; and the
published-shaped ``ModelConfig`` (CLIP ViT-L/336 + TokenPacker + a LLaMA of the 7B width)
that the benchmarks build with random weights, since no checkpoint is downloaded here.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from tpdoc.documents.tiling import CLIP_MEAN, CLIP_STD
from tpdoc.model.config import ModelConfig, VisionConfig
from tpdoc.model.packer import PackerConfig
from tpdoc.model.vision import PUBLISHED_LEVELS

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DEBIAN_PDFS = (
    Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
    Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
)

# openai/clip-vit-large-patch14-336, the published tower.
CLIP_L_336 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 336,
    "patch_size": 14,
    "projection_dim": 768,
}
# Vicuna-7B (LLaMA-7B) width; the depth is the benchmark's choice, said in its output.
LLAMA_7B = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
LLAMA_7B_LAYERS = 32


def published_shape(layers: int, *, scale: int = 2, max_tiles: int = 9) -> ModelConfig:
    """TokenPacker-HD-7B's shape with ``layers`` decoder layers (of 32)."""
    width = CLIP_L_336["hidden_size"]
    return ModelConfig(
        name=f"published-shape-{layers}L",
        vision=VisionConfig(
            type="clip",
            config=CLIP_L_336,
            select_layer=-2,
            levels=PUBLISHED_LEVELS,
            select_feature="patch",
        ),
        projector=PackerConfig(
            kind="tokenpacker",
            vision_dim=width,
            num_levels=len(PUBLISHED_LEVELS),
            embed_dim=width,
            llm_dim=LLAMA_7B["hidden_size"],
            grid=CLIP_L_336["image_size"] // CLIP_L_336["patch_size"],
            scale=scale,
        ),
        text={**LLAMA_7B, "num_hidden_layers": layers},
        mode="slice",
        max_tiles=max_tiles,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        prompt="vicuna_v1",
        short_answer=True,
    )


def nine_tile_page(folder: Path, source: Path = SAMPLES / "report.pdf") -> Path:
    """A square page (``source``'s first page scaled onto it) that the published geometry
    splits into 3 x 3 tiles plus the global view: the issue's "9-tile page"."""
    import pymupdf

    side = 612.0  # points; any square page plans to 3 x 3 under a 9-tile cap
    path = folder / "nine-tile-page.pdf"
    with pymupdf.open(source) as src, pymupdf.open() as out:
        page = out.new_page(width=side, height=side)
        page.show_pdf_page(page.rect, src, 0, keep_proportion=False)
        out.save(str(path))
    return path


@contextmanager
def created_on(device: torch.device | str, dtype: torch.dtype) -> Iterator[None]:
    """Modules built inside are created on ``device`` in ``dtype``: a 7B-shaped model is
    not first initialised in float32 on the CPU."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def synchronize(device: torch.device) -> None:
    """Wait for a GPU's queued work so that a wall-clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gpu_mb(device: torch.device) -> float | None:
    """Peak memory torch allocated on ``device`` since the process started (GPU only)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def machine() -> str:
    """The machine in one line: CPU model, cores usable, torch threads, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){gpu}, Python {platform.python_version()}"
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    as_json: bool,
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> None:
    """Print one result table (rich) or its JSON form, both naming the machine."""
    if as_json:
        record = {
            "benchmark": title,
            "machine": machine(),
            "rows": [dict(zip(columns, row, strict=True)) for row in rows],
            "notes": list(notes),
            **(extra or {}),
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=f"machine: {machine()}")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    # Piped output keeps whole columns instead of the 80-column default.
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for note in notes:
        console.print(f"- {note}")


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
