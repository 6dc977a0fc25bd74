"""Would a pretrained OCR backbone read tpdoc's slots better than its own tower?

In: RapidOCR's PP-OCRv4 text-line recogniser (``rapidocr-onnxruntime``, Apache-2.0, the
``bench`` extra), cut at the end of its PPLCNetV3 backbone (``onnx``), and a step budget.
Out: one table: the share of held-out printed slots read right by a fresh read-out head on
the frozen backbone's features of whole 384-pixel tiles, against the same head on
tpdoc's own tower (``benchmarks/readout_probe.py``'s "fresh head, tower cells": same seed,
same training pages and the same held-out pages), and the backbone's seconds per tile.

The backbone keeps width at stride 4 and height at stride 16: on a 384 tile, 24 x 96
cells of 480 channels, one slot column by two slot rows each. Each cell gets its own
two slots' logits. The backbone runs in ONNX Runtime, frozen; nothing is converted or
trained but the head.

    python -m benchmarks.ocr_backbone_probe [--steps 600] [--json]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import emit
from benchmarks.readout_probe import page_drawer, probe_arguments, training_tiles

BACKBONE_END = "p2o.Add.231"  # the recogniser's graph, just before its (3, 2) average pool
CHANNELS = 480


def backbone_session(folder: Path):  # -> onnxruntime.InferenceSession
    import onnx.utils
    import onnxruntime as ort
    import rapidocr_onnxruntime

    model = Path(rapidocr_onnxruntime.__file__).parent / "models/ch_PP-OCRv4_rec_infer.onnx"
    cut = folder / "backbone.onnx"
    onnx.utils.extract_model(str(model), str(cut), ["x"], [BACKBONE_END])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(cut), options, providers=["CPUExecutionProvider"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = probe_arguments(parser, steps=600).parse_args(argv)

    from tpdoc.model.readout import NUM_CLASSES, readout_counts, readout_loss
    from tpdoc.train.run_read import BLANK_WEIGHT, read_config

    torch.manual_seed(args.seed)
    config = read_config(None)
    grid = config.slot_grid
    k = NUM_CLASSES
    per_cell = grid.rows  # slot rows per backbone cell (16 pixels high, one slot wide)
    seconds: list[float] = []

    with tempfile.TemporaryDirectory() as folder:
        session = backbone_session(Path(folder))

        def features(views: torch.Tensor) -> torch.Tensor:
            """Normalised views ``[V, 3, T, T]`` -> backbone cells ``[V, T/16, T/4, 480]``."""
            started = time.perf_counter()
            out = session.run(None, {"x": views.float().numpy()})[0]  # [V, 480, T/16, T/4]
            seconds.append((time.perf_counter() - started) / len(views))
            return torch.from_numpy(out).permute(0, 2, 3, 1)

        def cell_labels(labels: torch.Tensor) -> torch.Tensor:
            """Slot classes ``[V, Q, S]`` -> per backbone cell ``[V, R/2, C, 2]``."""
            slots = grid.to_grid(labels)  # [V, R, C]
            v, r, c = slots.shape
            return slots.reshape(v, r // per_cell, per_cell, c).permute(0, 1, 3, 2)

        draw = page_drawer(config)
        head = nn.Sequential(nn.LayerNorm(CHANNELS), nn.Linear(CHANNELS, 768), nn.GELU(),
                             nn.Linear(768, per_cell * k))  # fmt: skip
        optimizer = torch.optim.AdamW(head.parameters(), 1e-3)
        # readout_probe's pages, in its order
        for views, labels in training_tiles(draw, args.seed, args.steps):
            logits = head(features(views)).unflatten(-1, (per_cell, k))
            loss = readout_loss(logits, cell_labels(labels), BLANK_WEIGHT)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        held = random.Random(f"probe-heldout/{args.seed}")
        right = printed = 0
        with torch.no_grad():
            for _ in range(args.pages):
                sample = draw(held, "eval")
                tiles = sample.plan.rows * sample.plan.cols
                logits = head(features(sample.views[:tiles])).unflatten(-1, (per_cell, k))
                r, p, _, _ = readout_counts(logits, cell_labels(sample.labels[:tiles]))
                right, printed = right + r, printed + p

    emit(
        "Held-out printed slots read right by a fresh head on a frozen backbone",
        ["backbone", "input width", "steps", "accuracy", "s per tile"],
        [["PP-OCRv4 recognition (PPLCNetV3), whole tile", CHANNELS, args.steps,
          round(right / max(1, printed), 4), round(sorted(seconds)[len(seconds) // 2], 3)]],
        as_json=args.json,
        notes=[f"{args.pages} held-out pages, seed {args.seed}; compare benchmarks/"
               "readout_probe.py's 'fresh head, tower cells' (the same pages and steps)"],
    )  # fmt: skip


if __name__ == "__main__":
    main()
