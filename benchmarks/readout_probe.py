"""Where reading is lost: the tower's cells against TokenPacker's packed tokens.

In: stage R weights (``--read``, default the committed ``training/pointer/read.safetensors``)
and a step budget. Out: one table: the share of held-out printed slots read right by
(1) the trained read-out on the packed tokens, as answers read them; and, trained here
for ``--steps`` on the same frozen tower, with the same data and the same head size,
(2) a fresh read-out on the packed tokens ``[V, Q, D]`` and (3) a fresh read-out on the
tower's last-level features of the token's s x s cells concatenated ``[V, Q, s*s*C]``:
what the packer could pass on if it lost nothing. If (3) reads far better than (2), the
packer is the bottleneck; if not, the tower is.

    python -m benchmarks.readout_probe [--read FILE] [--steps 400] [--json]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import ROOT, emit

TILES = 6


def head(width: int, slots: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 768), nn.GELU(),
                         nn.Linear(768, slots * classes))  # fmt: skip


def cells_of_tokens(features: torch.Tensor, grid: int, scale: int) -> torch.Tensor:
    """``[V, G*G, C]`` -> ``[V, g*g, s*s*C]``: each token's cells side by side."""
    v, _, c = features.shape
    g = grid // scale
    x = features.reshape(v, g, scale, g, scale, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(v, g * g, scale * scale * c)


def probe_arguments(parser: argparse.ArgumentParser, steps: int) -> argparse.ArgumentParser:
    """The step budget, held-out pages, seed and ``--json`` every read-out probe takes."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--pages", type=int, default=8, help="held-out pages")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    return parser


def page_drawer(config):  # -> (rng, split) -> SpanSample
    """Rendered pages with slot labels, the next one ``rng`` gives that has a question.
    Probes draw training pages from ``probe/SEED`` and held-out ones from
    ``probe-heldout/SEED``, so that they see the same pages in the same order."""
    from tpdoc.train.spans import span_sample

    grid = config.slot_grid

    def draw(rng: random.Random, split: str):
        while (sample := span_sample(rng, config.tiling, grid, split, 1, render=True)) is None:
            pass
        return sample

    return draw


def training_tiles(draw, seed: int, steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches of the ``TILES`` tiles with the most print of a training page:
    views ``[n, 3, T, T]`` and slot labels ``[n, Q, S]``."""
    from tpdoc.train.run_read import busiest_tiles

    rng = random.Random(f"probe/{seed}")
    step = 0
    while step < steps:
        sample = draw(rng, "train")
        if picked := busiest_tiles(sample, TILES):
            step += 1
            yield sample.views[picked], sample.labels[picked]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", type=Path, default=ROOT / "training/pointer/read.safetensors")
    args = probe_arguments(parser, steps=400).parse_args(argv)

    from tpdoc.model.document_model import DocumentModel
    from tpdoc.model.readout import NUM_CLASSES, readout_counts, readout_loss
    from tpdoc.train.run_read import BLANK_WEIGHT, load_weights, read_config
    from tpdoc.weights.checkpoint import load_tokenizer
    from tpdoc.weights.registry import resolve_model

    torch.manual_seed(args.seed)
    config = read_config(args.read)
    model = DocumentModel.from_config(config, load_tokenizer(resolve_model(None))).eval()
    load_weights(model, args.read)
    grid = config.slot_grid
    s, k = grid.per_token, NUM_CLASSES
    draw = page_drawer(config)

    @torch.no_grad()
    def inputs(views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = model.features(views)
        return model.pack(feats), cells_of_tokens(feats.features, grid.grid, grid.scale)

    packed_head = head(config.projector.llm_dim, s, k)
    cells_head = head(grid.scale**2 * config.vision.hidden_size, s, k)
    optimizer = torch.optim.AdamW([*packed_head.parameters(), *cells_head.parameters()], 1e-3)
    for views, labels in training_tiles(draw, args.seed, args.steps):
        packed, cells = inputs(views)
        loss = sum(
            readout_loss(h(x).unflatten(-1, (s, k)), labels, BLANK_WEIGHT)
            for h, x in ((packed_head, packed), (cells_head, cells))
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    held = random.Random(f"probe-heldout/{args.seed}")
    counts = {"trained read-out, packed tokens": [0, 0], "fresh head, packed tokens": [0, 0],
              "fresh head, tower cells": [0, 0]}  # fmt: skip
    with torch.no_grad():
        for _ in range(args.pages):
            sample = draw(held, "eval")
            tiles = sample.plan.rows * sample.plan.cols
            packed, cells = inputs(sample.views[:tiles])
            labels = sample.labels[:tiles]
            for name, logits in (
                ("trained read-out, packed tokens", model.pointer.read(packed)),
                ("fresh head, packed tokens", packed_head(packed).unflatten(-1, (s, k))),
                ("fresh head, tower cells", cells_head(cells).unflatten(-1, (s, k))),
            ):
                right, printed, _, _ = readout_counts(logits, labels)
                counts[name][0] += right
                counts[name][1] += printed
    emit(
        "Held-out printed slots read right",
        ["read-out", "input width", "steps", "accuracy"],
        [
            [name, width, steps, round(r / max(1, p), 4)]
            for (name, (r, p)), width, steps in zip(
                counts.items(),
                (
                    config.projector.llm_dim,
                    config.projector.llm_dim,
                    grid.scale**2 * config.vision.hidden_size,
                ),
                ("stage R", args.steps, args.steps),
                strict=True,
            )
        ],  # fmt: skip
        as_json=args.json,
        notes=[f"weights: {args.read}; {args.pages} held-out pages, seed {args.seed}"],
    )


if __name__ == "__main__":
    main()
