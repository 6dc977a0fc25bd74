"""Stage 2 of training the embedded model: question answering, with reading mixed in.

In: the embedded config, the reading-pretrained tower (``--tower``, stage 1's
``tower.safetensors``), a seed and a step budget. Out: in ``OUT``: ``state/`` (resumable),
``model/`` (a complete tpdoc model folder: config, weights, tokenizer), ``best/`` (the
best checkpoint by ``tpdoc.train.qa_eval.rank``) and ``log.jsonl`` (losses and the
held-out metrics of ``tpdoc.train.qa_eval``, on fonts never trained on). Each step is one
page: its views go through the tower once; the language model transcribes runs of its
lines (each shown alone) and some of its tiles, and, after ``read_only_steps``, answers
several questions about it and the questions one tile holds on that tile alone
(``tpdoc.train.qa_losses``). While it writes a transcription or a single-tile answer,
guided attention tells it where to look (``tpdoc.train.alignment``); a linear read-out
keeps every packed token saying which characters its region holds
(``tpdoc.train.packed_glyphs``), and a glyph loss keeps the tower reading.
``--freeze-vision`` trains only the projector and the language model, as TokenPacker
itself is trained on frozen towers. A ``projector`` config swaps in a fresh projector
(the ablation).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from pathlib import Path

import torch

from tpdoc.io import append_json_line
from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.packer import PackerConfig
from tpdoc.model.pointer import AnswerConfig
from tpdoc.model.projectors import build_projector
from tpdoc.model.tokenizer import train_tokenizer
from tpdoc.train.glyphs import GlyphGrid, GlyphHead
from tpdoc.train.optim import GRAD_CLIP, VISION_LR_FACTOR, warmup_cosine
from tpdoc.train.packed_glyphs import packed_glyph_head
from tpdoc.train.qa import READ_QUESTION, PageStream, make_sample
from tpdoc.train.qa_eval import evaluate, rank
from tpdoc.train.qa_losses import WEIGHTS, step_loss
from tpdoc.train.run_glyphs import HEAD_FILE, save_glyph_head
from tpdoc.train.stage_files import load_tower, save_progress, saved_step
from tpdoc.weights.checkpoint import load_model, save_model
from tpdoc.weights.registry import load_config

VOCAB_SIZE = 4 + 256  # special tokens + bytes, no merges: one token per printed character
TOKENIZER_DOCS = 0  # bytes only: the corpus adds nothing to a vocabulary without merges
QUESTIONS_PER_PAGE = 4
EVAL_PAGES = 24


def tokenizer_corpus(seed: int, docs: int):
    from tpdoc.synth.layouts import make_document
    from tpdoc.synth.questions import questions_for

    rng = random.Random(f"tokenizer/{seed}")
    for _ in range(docs):
        synth = make_document(rng)
        for number in range(1, synth.doc.page_count + 1):
            yield synth.doc[number - 1].get_text()
            for q, a, _ in questions_for(synth, number, rng, 8, absent_rate=0.3):
                yield q
                yield a
        synth.doc.close()
    yield READ_QUESTION


def model_to_train(out: Path, *, seed: int, resume: bool, config: ModelConfig | None,
                   tokenizer_docs: int, init_model: Path | None,
                   projector: PackerConfig | None) -> DocumentModel:  # fmt: skip
    """The model stage 2 starts from: a saved model folder (``init_model``) with its
    tokenizer and config, or a fresh one of ``config`` (default: the embedded one) with the
    tokenizer of ``OUT/tokenizer`` (trained and saved there on a first run); with
    ``projector``, a fresh projector of that config in place of its own."""
    from transformers import PreTrainedTokenizerFast

    tok_dir = out / "tokenizer"
    if init_model is not None and not resume:
        # Continue from a whole saved model (its tokenizer and config come with it).
        model = load_model(init_model).train()
        model.tokenizer.save_pretrained(str(tok_dir))
    else:
        if (tok_dir / "tokenizer.json").is_file():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
        else:
            tokenizer = train_tokenizer(tokenizer_corpus(seed, tokenizer_docs), VOCAB_SIZE)
            tokenizer.save_pretrained(str(tok_dir))
        base = config or generating(load_config())
        config = replace(base, text={**base.text, "vocab_size": len(tokenizer)})
        model = DocumentModel.from_config(config, tokenizer)
    if projector is not None:
        # A fresh projector of another kind or scale on the same tower and language model
        # (the projector ablation); a resumed run gets its trained weights back from state.
        model.config = replace(model.config, projector=projector)
        model.projector = build_projector(projector)
    return model


def generating(config: ModelConfig) -> ModelConfig:
    """``config`` as the generating model stages 1 and 2 train: no pointer head and the
    tower without the blocks stage R grew (``stage_blocks``), so stage 1's tower fits it."""
    vision = {k: v for k, v in config.vision.config.items() if k != "stage_blocks"}
    return replace(config, answer=AnswerConfig(), vision=replace(config.vision, config=vision))


def train_qa(
    out: Path,
    *,
    steps: int,
    tower: Path | None,
    lr: float = 1e-3,
    seed: int = 0,
    resume: bool = False,
    eval_every: int = 200,
    workers: int = 1,
    freeze_vision: bool = False,
    bf16: bool = True,
    config: ModelConfig | None = None,
    tokenizer_docs: int = TOKENIZER_DOCS,
    eval_pages: int = EVAL_PAGES,
    init_model: Path | None = None,
    projector: PackerConfig | None = None,
    read_only_steps: int = 0,
    guide: bool = True,
) -> dict[str, float]:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from rich.progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    model = model_to_train(
        out, seed=seed, resume=resume, config=config, tokenizer_docs=tokenizer_docs,
        init_model=init_model, projector=projector,
    )  # fmt: skip
    config = model.config
    if tower is not None and not resume:
        load_tower(model.vision, tower)
    grid = GlyphGrid(cell=config.vision.tile_size // config.vision.patch_grid)
    head = GlyphHead(config.vision.hidden_size, grid)
    start_from = tower.parent if tower is not None else init_model
    if start_from is not None and not resume and (start_from / HEAD_FILE).is_file():
        from tpdoc.weights.tensors import load_strict, read_safetensors

        load_strict(head, read_safetensors([start_from / HEAD_FILE]), str(start_from / HEAD_FILE))
    if freeze_vision:
        model.vision.requires_grad_(False)
    packed_head = packed_glyph_head(config)
    rest = [*model.projector.parameters(), *model.language_model.parameters(),
            *packed_head.parameters()]  # fmt: skip
    vision = [*model.vision.parameters(), *head.parameters()]
    groups = [{"params": rest, "lr": lr}, {"params": vision, "lr": lr * VISION_LR_FACTOR}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.05)
    scheduler = warmup_cosine(optimizer, steps)  # its state is restored on resume
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    start = saved_step(out) if resume else 0
    tiling = config.tiling
    loader = torch.utils.data.DataLoader(
        PageStream(f"{seed}/{start}", tiling, grid, "train", QUESTIONS_PER_PAGE),
        batch_size=None, num_workers=workers, persistent_workers=workers > 0,
    )  # fmt: skip
    rng = random.Random(f"heldout/{seed}")
    held_out = []
    while len(held_out) < eval_pages:
        sample = make_sample(rng, tiling, grid, "eval", QUESTIONS_PER_PAGE)
        if sample is not None:
            held_out.append(sample)
    model, head, packed_head, optimizer, scheduler = accelerator.prepare(
        model, head, packed_head, optimizer, scheduler
    )
    if start:
        accelerator.load_state(str(out / "state"))
    raw = accelerator.unwrap_model(model)
    metrics: dict[str, float] = {}
    t0 = time.time()
    best_file = out / "best" / "metrics.json"
    best = (
        rank(json.loads(best_file.read_text()))
        if resume and best_file.is_file()
        else (-1.0, -1.0, -1.0)
    )
    sums = dict.fromkeys(WEIGHTS, 0.0)
    counts = dict.fromkeys(WEIGHTS, 0)
    batch_rng = random.Random(f"batch/{seed}/{start}")
    glyph_head = None if freeze_vision else head
    bar = Progress(transient=False)
    task = bar.add_task("qa", total=steps, completed=start)
    bar.start()
    for step, sample in zip(range(start, steps), loader, strict=False):
        losses = step_loss(
            raw, glyph_head, sample, accelerator.autocast, batch_rng, packed_head,
            ask=step >= read_only_steps, guide=guide,
        )  # fmt: skip
        loss = sum(WEIGHTS[k] * v for k, v in losses.items())
        accelerator.backward(loss)
        accelerator.clip_grad_norm_([*rest, *vision], GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        for key, value in losses.items():
            sums[key] += value.item()
            counts[key] += 1
        bar.update(task, advance=1, description=f"qa loss {loss.item():.3f}")
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            done = step + 1 - start
            means = {f"{k}_loss": round(v / counts[k], 4) for k, v in sums.items() if counts[k]}
            metrics = {"step": step + 1, **means,
                       "pages_per_s": round(done / (time.time() - t0), 3)}  # fmt: skip
            evaluated = evaluate(raw, held_out, accelerator.unwrap_model(packed_head))
            metrics.update({k: round(v, 4) for k, v in evaluated.items()})
            sums, counts = dict.fromkeys(sums, 0.0), dict.fromkeys(counts, 0)
            append_json_line(out / "log.jsonl", metrics)
            accelerator.save_state(str(out / "state"))
            save_model(raw, out / "model")
            save_glyph_head(accelerator.unwrap_model(head), out / "model" / HEAD_FILE)
            if rank(metrics) > best:
                best = rank(metrics)
                save_model(raw, out / "best")
                best_file.write_text(json.dumps(metrics, indent=2))
            save_progress(out, step + 1)
    bar.stop()
    return metrics
