"""Stage 1 of training the embedded model: reading pretraining of the vision tower.

In: the embedded model's config (tower shape, tile size, normalisation), a seed and a
step budget. Out: in ``OUT``: ``state/`` (accelerate's resumable state), ``tower.safetensors``
(the tower's weights, ``vision.*`` keys as in a tpdoc model), ``glyph_head.safetensors``
(the glyph classifier, for stage 2's auxiliary loss) and ``log.jsonl`` (loss,
held-out glyph accuracy on fonts never trained on). Runs on CPU, one GPU or many through
``accelerate``; resumes from ``OUT/state`` with ``--resume``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from tpdoc.io import append_json_line
from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import build_vision_tower
from tpdoc.train.glyphs import (
    GlyphGrid,
    GlyphHead,
    GlyphStream,
    glyph_accuracy,
    glyph_loss,
)
from tpdoc.train.optim import GRAD_CLIP, warmup_cosine
from tpdoc.train.stage_files import load_tower, save_module, save_progress, saved_step
from tpdoc.weights.registry import load_config

NONE_WEIGHT = 0.2  # of blank sub-cells in the glyph loss (stage 2 keeps the same)
EVAL_CROPS = 64
HEAD_FILE = "glyph_head.safetensors"  # saved beside the tower: stage 2 keeps the glyph loss


def train_glyphs(
    out: Path,
    *,
    steps: int,
    batch: int = 12,
    lr: float = 2e-3,
    seed: int = 0,
    resume: bool = False,
    eval_every: int = 100,
    workers: int = 1,
    model: str | None = None,
    bf16: bool = True,
    config: ModelConfig | None = None,
    eval_crops: int = EVAL_CROPS,
    init: Path | None = None,
) -> dict[str, float]:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from rich.progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    config = config or load_config(model)
    grid = GlyphGrid(cell=config.vision.tile_size // config.vision.patch_grid)
    set_seed(seed)
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    tower = build_vision_tower(config)
    if init is not None:
        load_tower(tower, init)
    head = GlyphHead(config.vision.hidden_size, grid)
    params = [*tower.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    scheduler = warmup_cosine(optimizer, steps)
    tiling = config.tiling
    start = saved_step(out) if resume else 0
    stream = GlyphStream(
        seed * 1_000_003 + start,
        tiling.tile_size,
        "train",
        tiling.image_mean,
        tiling.image_std,
        grid,
    )
    loader = torch.utils.data.DataLoader(
        stream, batch_size=batch, num_workers=workers, persistent_workers=workers > 0
    )
    held_out = list(_take(GlyphStream(seed + 7919, tiling.tile_size, "eval", tiling.image_mean,
                                      tiling.image_std, grid), eval_crops))  # fmt: skip
    tower, head, optimizer, scheduler = accelerator.prepare(tower, head, optimizer, scheduler)
    if start:
        accelerator.load_state(str(out / "state"))
    metrics: dict[str, float] = {}
    t0, seen = time.time(), 0
    with Progress(transient=False) as bar:
        task = bar.add_task("glyphs", total=steps, completed=start)
        for step, (pixels, labels) in zip(range(start, steps), loader, strict=False):
            tower.train()
            with accelerator.autocast():
                logits = head(tower(pixels).features)
            loss = glyph_loss(logits, labels, NONE_WEIGHT)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, GRAD_CLIP)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            seen += pixels.shape[0]
            bar.update(task, advance=1, description=f"glyphs loss {loss.item():.3f}")
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                acc, fa = evaluate(tower, head, held_out, accelerator)
                metrics = {
                    "step": step + 1,
                    "loss": round(loss.item(), 4),
                    "heldout_glyph_acc": round(acc, 4),
                    "heldout_false_alarm": round(fa, 5),
                    "lr": scheduler.get_last_lr()[0],
                    "tiles_per_s": round(seen / (time.time() - t0), 2),
                }
                append_json_line(out / "log.jsonl", metrics)
                save(accelerator, tower, head, out, step + 1)
    return metrics


def _take(stream: GlyphStream, n: int):
    for i, item in enumerate(stream):
        if i >= n:
            return
        yield item


@torch.no_grad()
def evaluate(tower, head, held_out, accelerator) -> tuple[float, float]:
    tower.eval()
    correct = total = false_alarm = empty = 0
    for i in range(0, len(held_out), 16):
        pixels = torch.stack([p for p, _ in held_out[i : i + 16]])
        labels = torch.stack([lab for _, lab in held_out[i : i + 16]])
        with accelerator.autocast():
            logits = head(tower(pixels).features)
        c, t, f = glyph_accuracy(logits, labels)
        correct, total, false_alarm = correct + c, total + t, false_alarm + f
        empty += int((labels == 0).sum())
    return correct / max(1, total), false_alarm / max(1, empty)


def save_glyph_head(head, target: Path) -> None:
    """The glyph classifier's weights (training only, not shipped)."""
    save_module(head, target)


def save(accelerator, tower, head, out: Path, step: int) -> None:
    accelerator.save_state(str(out / "state"))
    save_glyph_head(accelerator.unwrap_model(head), out / HEAD_FILE)
    save_module(accelerator.unwrap_model(tower), out / "tower.safetensors", prefix="vision.")
    save_progress(out, step)
