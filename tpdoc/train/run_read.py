"""Stage R of training the embedded model: the tower and TokenPacker learn to read densely.

In: a tpdoc model folder to start from (``--init-model``, default the shipped
``tpdoc-tiny``: its tower and packer), a seed and a step budget. Out: in ``OUT``:
``read.safetensors`` (``vision.*``, ``projector.*`` and ``pointer.readout.*`` keys of a
pointer model), ``progress.json`` and ``log.jsonl``: the loss and, on pages in fonts and
layouts never trained on, the share of printed slots read right (``heldout_read_acc``, gate
R) and of blank slots read as print (``heldout_false_alarm``), both as answers read them
(with the blank bias, ``tpdoc.model.pointer.AnswerConfig``).

Every slot of every packed token is a target (``tpdoc.model.readout``): which character's centre
lies in it, a space, or nothing; about 300 printed slots per tile. No language model
runs, so a step costs the tower and the packer only. Pages are rendered, planned and
tiled exactly as at answer time, scan-like damage included (``tpdoc.train.spans``).
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from tpdoc.errors import ConfigError
from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.packer import PackerConfig
from tpdoc.model.pointer import AnswerConfig
from tpdoc.model.readout import BLANK, SlotGrid, readout_counts, readout_loss, span_text
from tpdoc.train.optim import GRAD_CLIP, VISION_LR_FACTOR, warmup_cosine
from tpdoc.train.spans import SpanSample, SpanStream, span_sample
from tpdoc.train.stage_files import file_metadata, record_step, save_parameters, saved_step
from tpdoc.weights.registry import load_config

TILES_PER_STEP = 6  # the tiles with the most print of a page
BLANK_WEIGHT = 0.1
EVAL_PAGES = 8
WEIGHTS_FILE = "read.safetensors"
PREFIXES = ("vision.", "projector.", "pointer.readout.")
VISION_METADATA = "vision_config"  # the tower's config in the header of ``read.safetensors``
PROJECTOR_METADATA = "projector_config"  # and the packer's (files before it: the shipped one)


def pointer_config(base: ModelConfig | None = None) -> ModelConfig:
    """The embedded model's config with a pointer answer head."""
    return replace(base or load_config(None), answer=AnswerConfig(kind="pointer"))


def grown(config: ModelConfig, stage_blocks: tuple[int, ...]) -> ModelConfig:
    """``config`` with a convolutional tower of ``stage_blocks`` more blocks per stem stage
    (``tpdoc.model.convnet``); a checkpoint of the smaller tower loads into it unchanged."""
    has = list(config.vision.config.get("stage_blocks") or [])
    has += [0] * (len(stage_blocks) - len(has))
    if len(has) > len(stage_blocks) or any(n < h for n, h in zip(stage_blocks, has, strict=True)):
        raise ConfigError(
            f"--stage-blocks {','.join(map(str, stage_blocks))}: the tower it starts from "
            f"already has {','.join(map(str, has))}; a tower can only grow"
        )
    vision = dict(config.vision.config, stage_blocks=list(stage_blocks))
    return replace(config, vision=replace(config.vision, config=vision))


def widened(config: ModelConfig, packer: tuple[int, ...]) -> ModelConfig:
    """``config`` with a TokenPacker ``packer = (E, D)`` wide: attention width E in heads as
    wide as its own, packed tokens D wide (a pointer model's read-out alone reads them)."""
    p = config.projector
    head = p.embed_dim // p.heads
    if len(packer) != 2 or packer[0] % head or min(packer) < 1:
        raise ConfigError(
            f"--packer {','.join(map(str, packer))}: give E,D, E a multiple of the head "
            f"width {head}"
        )
    embed, out = packer
    return replace(
        config, projector=replace(p, embed_dim=embed, num_heads=embed // head, llm_dim=out)
    )


def read_config(read: Path | None, stage_blocks: tuple[int, ...] | None = None,
                packer: tuple[int, ...] | None = None) -> ModelConfig:  # fmt: skip
    """The pointer config whose tower and packer fit stage R's weights ``read`` (their
    header names both; files from before that have the shipped ones), the tower grown by
    ``stage_blocks``, the packer made ``packer`` wide."""
    config = pointer_config()
    saved = file_metadata(read) if read is not None else {}
    if saved.get(VISION_METADATA):
        vision = json.loads(saved[VISION_METADATA])
        config = replace(config, vision=replace(config.vision, config=vision))
    if saved.get(PROJECTOR_METADATA):
        projector = PackerConfig(**json.loads(saved[PROJECTOR_METADATA]))
        config = replace(config, projector=projector)
    config = grown(config, stage_blocks) if stage_blocks is not None else config
    return widened(config, packer) if packer is not None else config


def trained_parameters(model: DocumentModel) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if n.startswith(PREFIXES)}


def busiest_tiles(sample: SpanSample, n: int) -> list[int]:
    printed = (sample.labels != BLANK).flatten(1).sum(1)  # [tiles]
    order = printed.argsort(descending=True).tolist()
    return [i for i in order[:n] if printed[i] > 0]


def read_logits(model: DocumentModel, views: torch.Tensor, trained: bool = True) -> torch.Tensor:
    """Views ``[V, 3, T, T]`` -> slot logits ``[V, Q, S, K]``: as trained, or (``trained``
    False) as answers read them, with the blank bias."""
    packed = model.encode(views)
    return model.pointer.readout(packed) if trained else model.pointer.read(packed)


def row_edits(pred: torch.Tensor, labels: torch.Tensor, grid: SlotGrid) -> tuple[int, int]:
    """(edits, characters) of every slot row of a view that has print, read back in
    reading order as answers read it (``span_text``), against its true classes ``[Q, S]``."""
    from tpdoc.answering.anls import levenshtein

    truth, read = grid.to_grid(labels.cpu()), grid.to_grid(pred.cpu())  # [R, C]
    edits = chars = 0
    last = truth.shape[1] - 1
    for r in torch.nonzero((truth != BLANK).any(1)).flatten().tolist():
        want = span_text(truth, (r, 0), (r, last), grid).text
        edits += levenshtein(span_text(read, (r, 0), (r, last), grid).text, want)
        chars += len(want)
    return edits, chars


@torch.no_grad()
def evaluate(model: DocumentModel, held_out: list[SpanSample], bf16: bool) -> dict[str, float]:
    """Gate R on held-out pages: printed slots read right, blank ones read as print, and
    the character error rate of their slot rows read back in reading order."""
    model.eval()
    right = printed = alarms = blanks = edits = chars = 0
    device = model.device
    for sample in held_out:
        tiles = sample.plan.rows * sample.plan.cols
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = read_logits(model, sample.views[:tiles].to(device), trained=False)
        r, p, a, b = readout_counts(logits, sample.labels.to(device))
        right, printed, alarms, blanks = right + r, printed + p, alarms + a, blanks + b
        for pred, labels in zip(logits.argmax(-1), sample.labels, strict=True):
            e, c = row_edits(pred, labels, model.config.slot_grid)
            edits, chars = edits + e, chars + c
    model.train()
    return {
        "heldout_read_acc": right / max(1, printed),
        "heldout_false_alarm": alarms / max(1, blanks),
        "heldout_read_cer": edits / max(1, chars),
        "heldout_printed_slots": printed,
    }


def save_weights(model: DocumentModel, path: Path) -> None:
    vision = json.dumps(model.config.vision.config, sort_keys=True)
    projector = json.dumps(asdict(model.config.projector), sort_keys=True)
    metadata = {VISION_METADATA: vision, PROJECTOR_METADATA: projector}
    save_parameters(trained_parameters(model), path, metadata)


def load_weights(model: DocumentModel, path: Path, prefixes: tuple[str, ...] = PREFIXES,
                 state: dict[str, torch.Tensor] | None = None) -> int:  # fmt: skip
    """Copy the tensors of ``path`` (or ``state``, read from it) whose names start with
    ``prefixes`` into ``model``, all or none (every shape is checked first); the number
    copied."""
    from safetensors.torch import load_file

    params = dict(model.named_parameters())
    state = load_file(str(path)) if state is None else state
    state = {k: v for k, v in state.items() if k.startswith(prefixes)}
    for k, v in state.items():
        if k not in params or params[k].shape != v.shape:
            raise KeyError(f"{path}: {k} {tuple(v.shape)} does not fit the model")
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)
    return len(state)


def train_read(out: Path, *, steps: int, lr: float = 1e-3, seed: int = 0, eval_every: int = 200,
               workers: int = 1, resume: bool = False, init_model: Path | None = None,
               tower: Path | None = None, device: str = "cpu",
               bf16: bool = True, eval_pages: int = EVAL_PAGES,
               stage_blocks: tuple[int, ...] | None = None,
               packer: tuple[int, ...] | None = None,
               config: ModelConfig | None = None) -> dict[str, float]:  # fmt: skip
    """Stage R. The tower is the one ``tower`` (or, resuming, ``OUT``'s weights) was saved
    with, grown by ``stage_blocks`` when given (its new blocks start as the identity); a
    ``packer`` width (``widened``) widens the packer and read-out it starts from
    (``tpdoc.train.widen``), so that they compute what they did."""
    from safetensors.torch import load_file

    from tpdoc.weights.checkpoint import WEIGHTS_FILE as MODEL_WEIGHTS
    from tpdoc.weights.checkpoint import load_tokenizer
    from tpdoc.weights.registry import resolve_model

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    folder = resolve_model(init_model)
    start = saved_step(out) if resume else 0
    if config is None:
        packer = None if start else packer  # a resumed run's file names its packer
        config = read_config(out / WEIGHTS_FILE if start else tower, stage_blocks, packer)
    model = DocumentModel.from_config(config, load_tokenizer(folder)).train()
    if start:
        load_weights(model, out / WEIGHTS_FILE)  # weights only: the optimizer starts afresh
    else:
        source = folder / MODEL_WEIGHTS if tower is None else tower
        state = load_file(str(source))
        if packer is not None:
            from tpdoc.train.widen import widen_packer

            state = widen_packer(state, read_config(tower).projector, config.projector, seed)
        load_weights(model, source, ("vision.", "projector."), state)
        with contextlib.suppress(KeyError):  # a read-out of another shape, or none: a fresh one
            load_weights(model, source, ("pointer.readout.",), state)
    model.to(device)
    params = trained_parameters(model)
    vision = [p for n, p in params.items() if n.startswith("vision.")]
    rest = [p for n, p in params.items() if not n.startswith("vision.")]
    optimizer = torch.optim.AdamW(
        [{"params": vision, "lr": lr * VISION_LR_FACTOR}, {"params": rest, "lr": lr}],
        weight_decay=0.01,
    )
    scheduler = warmup_cosine(optimizer, steps, start)
    rng = random.Random(f"read-heldout/{seed}")
    held_out = []
    while len(held_out) < eval_pages:
        sample = span_sample(rng, config.tiling, config.slot_grid, "eval", 1, render=True)
        if sample is not None:
            held_out.append(sample)
    stream = SpanStream(f"read/{seed}/{start}", config.tiling, config.slot_grid, "train", 1,
                        render=True)  # fmt: skip
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0
    )
    losses: list[float] = []
    tiles_seen, started = 0, time.perf_counter()
    metrics: dict[str, float] = {}
    step = start
    for sample in loader:
        picked = busiest_tiles(sample, TILES_PER_STEP)
        if not picked:
            continue
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = read_logits(model, sample.views[picked].to(model.device))
        loss = readout_loss(logits, sample.labels[picked].to(model.device), BLANK_WEIGHT)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        tiles_seen += len(picked)
        step += 1
        if step % eval_every == 0 or step == steps:
            metrics = {
                "step": step,
                "loss": round(sum(losses) / len(losses), 4),
                "tiles_per_s": round(tiles_seen / (time.perf_counter() - started), 2),
                **{k: round(v, 4) for k, v in evaluate(model, held_out, bf16).items()},
            }
            record_step(out, metrics, lambda: save_weights(model, out / WEIGHTS_FILE))
            losses, tiles_seen, started = [], 0, time.perf_counter()
        if step >= steps:
            break
    return metrics
