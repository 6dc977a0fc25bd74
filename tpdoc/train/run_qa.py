"""Stage 2 of training the embedded model: question answering, with reading mixed in.

In: the embedded config, the reading-pretrained tower (``--tower``, stage 1's
``tower.safetensors``), a seed and a step budget. Out: in ``OUT``: ``state/`` (resumable),
``model/`` (a complete tpdoc model folder: config, weights, tokenizer) and ``log.jsonl``
(losses, held-out exact match, ANLS, single-tile exact match, tile and single-line CER,
how much the right visual tokens help (``heldout_look_gain``) and the packed tokens'
character read-out accuracy, on fonts never trained on). Each step is one page: its
views go through the tower once; the language model transcribes ``LINE_READS`` runs of
its lines (each shown alone) and up to ``READ_TILES`` of its tiles, and, after
``read_only_steps``, answers several questions about it and the questions one tile holds
on that tile alone. While it writes a transcription or a single-tile answer, guided
attention tells it where to look (``tpdoc.train.alignment``); a linear read-out keeps
every packed token saying which characters its region holds, and a glyph loss keeps the
tower reading. ``--freeze-vision``
trains only the projector and the language model, as TokenPacker itself is trained on
frozen towers. A ``projector`` config swaps in a fresh projector (the ablation).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path

import torch

from tpdoc.documents.tiling import TilePlan
from tpdoc.io import append_json_line, atomic_write_text
from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.packer import PackerConfig
from tpdoc.model.projectors import build_projector
from tpdoc.model.sequence import IGNORE_INDEX, assemble_batch
from tpdoc.model.tokenizer import train_tokenizer
from tpdoc.train.alignment import attention_loss, eager_attention, token_targets
from tpdoc.train.glyphs import GlyphGrid, GlyphHead, glyph_loss
from tpdoc.train.lines import line_runs, white_value
from tpdoc.train.qa import (
    MAX_READ_CHARS,
    READ_QUESTION,
    PageSample,
    PageStream,
    TextLine,
    joined,
    make_sample,
)
from tpdoc.train.run_glyphs import (
    GRAD_CLIP,
    HEAD_FILE,
    NONE_WEIGHT,
    load_tower,
    lr_lambda,
    save_glyph_head,
)
from tpdoc.weights.checkpoint import load_model, save_model
from tpdoc.weights.registry import load_config

VOCAB_SIZE = 4 + 256  # special tokens + bytes, no merges: one token per printed character
TOKENIZER_DOCS = 0  # bytes only: the corpus adds nothing to a vocabulary without merges
QUESTIONS_PER_PAGE = 4
READ_TILES = 8  # tiles transcribed per page (the language model is cheap beside the tower)
LINE_READS = 8  # runs of lines transcribed per page (each costs one more tower pass)
MAX_LINES = 3
WEIGHTS = {"qa": 1.0, "read": 0.5, "lines": 1.0, "align": 0.5, "tile_qa": 1.0, "glyph": 0.3,
           "packed_glyph": 1.0}  # fmt: skip
PACKED_NONE_WEIGHT = 0.02  # a packed token's 32 sub-cells are mostly blank: keep glyphs heard
VISION_LR_FACTOR = 0.3
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


def single_tile_plan(t: int) -> TilePlan:
    return TilePlan(t, t, 1, 1, t, "slice", (t, t), ((0.0, 0.0, float(t), float(t)),))


def packed_qa(model: DocumentModel, qa: list[tuple[str, str]]):
    """All questions about a page in one sequence: the page is attended once.

    The first question is laid out exactly as at answer time; each later one follows the
    previous answer's EOS. Only answer tokens (and their EOS) carry a loss.
    """
    tok = model.tokenizer
    first = model.prompt_ids(qa[0][0])
    ids: list[int] = []
    labels: list[int] = []
    for i, (question, answer) in enumerate(qa):
        if i:
            after = list(model.prompt_ids(question).after)
            ids += after
            labels += [IGNORE_INDEX] * len(after)
        answer_ids = [*tok(answer, add_special_tokens=False).input_ids, tok.eos_token_id]
        ids += answer_ids
        labels += answer_ids
    return first, ids, labels


def packed_labels(labels: torch.Tensor, cells: GlyphGrid, grid: int, scale: int) -> torch.Tensor:
    """Glyph labels of tower cells regrouped by packed token: ``[T, G*G, r*c]`` ->
    ``[T, g*g, (s*r)*(s*c)]``, each token's ``s x s`` region as one finer grid."""
    t, _, _ = labels.shape
    g = grid // scale
    r, c = cells.rows, cells.cols
    x = labels.reshape(t, g, scale, g, scale, r, c)  # [T, g, s, g, s, r, c]
    x = x.permute(0, 1, 3, 2, 5, 4, 6)  # -> [T, g, g, s, r, s, c]
    return x.reshape(t, g * g, scale * r * scale * c)


def token_scale(projector: PackerConfig) -> int:
    """Tower cells per token side: the scale, or 1 for the uncompressed MLP."""
    return projector.grid // math.isqrt(projector.tokens_per_tile)


def page_packed_labels(model: DocumentModel, sample: PageSample) -> torch.Tensor:
    """The page's tile glyph labels grouped by the model's packed tokens."""
    p = model.config.projector
    return packed_labels(sample.glyph_labels, GlyphGrid(), p.grid, token_scale(p))


def packed_glyph_head(config: ModelConfig) -> GlyphHead:
    """Reads the characters of a packed token's region back out of it: keeps the packer
    from collapsing to a constant while the language model has not learnt to look."""
    s, base = token_scale(config.projector), GlyphGrid()
    cell = config.vision.tile_size // config.vision.patch_grid * s
    return GlyphHead(config.projector.llm_dim, GlyphGrid(cell, base.rows * s, base.cols * s))


def read_losses(model: DocumentModel, packed: torch.Tensor, runs: list[TextLine],
                guide: bool = True, questions: list[str] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """Single tiles ``[n, Q, D]``, each with the ``TextLine`` to write (its text, or a
    question's answer, with the characters' centres): the cross-entropy and, with
    ``guide``, the guided-attention loss (``tpdoc.train.alignment``). Without
    ``questions`` the model is asked to read the tile."""
    one_tile = single_tile_plan(model.config.tiling.tile_size)
    prompts = [model.prompt_ids(q) for q in questions or [READ_QUESTION] * len(runs)]
    pages = [model.page_embeddings(packed[i : i + 1], one_tile) for i in range(len(runs))]
    texts = [run.text for run in runs]
    batch = model.build_batch(prompts, pages, answers=texts, padding_side="right")
    if not guide:
        return model.loss(batch), None
    with eager_attention(model.language_model):
        out = model.language_model(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
            labels=batch.labels, output_attentions=True,
        )  # fmt: skip
    p = model.config.projector
    targets = []
    for run in runs:
        ids = model.tokenizer(run.text, add_special_tokens=False).input_ids
        per_char = [len(c.encode("utf-8")) for c in run.text]
        # Byte tokens map to characters only without merges; other tokenizers go unguided.
        fits = len(ids) == sum(per_char) and len(run.centres) == len(run.text)
        targets.append(token_targets(run, one_tile.tile_size, p.out_grid, per_char) if fits else [])
    befores = [len(prompt.before) for prompt in prompts]
    starts = [
        b + page.shape[0] + len(prompt.after)
        for b, page, prompt in zip(befores, pages, prompts, strict=True)
    ]
    align = attention_loss(out.attentions, starts, befores, targets)
    return out.loss, align


def answer_line(lines: list[TextLine], answer: str) -> TextLine:
    """The answer with its characters' centres when it is printed exactly once in the
    tile's text, else without (unguided)."""
    text = joined(lines)
    at = text.text.find(answer)
    if at < 0 or text.text.count(answer) != 1:
        return TextLine(text.box, answer)
    return TextLine(text.box, answer, text.centres[at : at + len(answer)])


def step_loss(model: DocumentModel, head: GlyphHead | None, sample: PageSample, autocast,
              rng: random.Random, packed_head: GlyphHead | None = None, *,
              ask: bool = True, guide: bool = True) -> dict[str, torch.Tensor]:  # fmt: skip
    """One page: QA loss (questions packed after the page), transcription of its tiles and
    of runs of their lines, the questions that single tiles answer, the glyph loss of every
    tile (unless the tower is frozen) and of every packed token. ``ask=False`` leaves the
    questions out (the reading-only start). Returns the losses by name."""
    tiles = sample.plan.rows * sample.plan.cols
    device = model.device  # samples come from the data workers on the CPU
    losses: dict[str, torch.Tensor] = {}
    aligns: list[torch.Tensor | None] = []
    with autocast():
        tiling = model.config.tiling
        white = white_value(tiling.image_mean, tiling.image_std)
        views, runs = line_runs(sample, rng, LINE_READS, MAX_LINES, white)
        if runs:
            with torch.set_grad_enabled(head is not None and torch.is_grad_enabled()):
                line_feats = model.vision(views.to(device))
            line_packed = model.projector(
                features=line_feats.features, multi_level_features=line_feats.multi_level_features
            )  # [n, Q, D]
            losses["lines"], align = read_losses(model, line_packed, runs, guide)
            aligns.append(align)
        with torch.set_grad_enabled(head is not None and torch.is_grad_enabled()):
            feats = model.vision(sample.views.to(device))  # [V, N, C], [V, N, L*C]
        packed = model.projector(
            features=feats.features, multi_level_features=feats.multi_level_features
        )  # [V, Q, D]
        if head is not None:
            losses["glyph"] = glyph_loss(
                head(feats.features[:tiles]), sample.glyph_labels.to(device), NONE_WEIGHT
            )
        if packed_head is not None:
            labels = page_packed_labels(model, sample).to(device)
            losses["packed_glyph"] = glyph_loss(
                packed_head(packed[:tiles]), labels, PACKED_NONE_WEIGHT
            )
        if ask:
            page = model.page_embeddings(packed, sample.plan)
            prompt, ids, labels = packed_qa(model, sample.qa)
            embed = model.language_model.get_input_embeddings()
            qa = assemble_batch(embed, [prompt], [page], [ids], "right", [labels])
            losses["qa"] = model.loss(qa)
        reads = rng.sample(sample.tile_texts, min(READ_TILES, len(sample.tile_texts)))
        if reads:
            picked = [i for i, _ in reads]
            whole = [joined(sample.lines[i], MAX_READ_CHARS) for i in picked]
            losses["read"], align = read_losses(model, packed[picked], whole, guide)
            aligns.append(align)
        if ask and sample.tile_qa:
            # Where to look is known for these answers too: the value's characters.
            picked = [i for i, _, _ in sample.tile_qa]
            answers = [answer_line(sample.lines[i], a) for i, _, a in sample.tile_qa]
            questions = [q for _, q, _ in sample.tile_qa]
            losses["tile_qa"], align = read_losses(model, packed[picked], answers, guide, questions)
            aligns.append(align)
    guided = [a for a in aligns if a is not None]
    if guided:
        losses["align"] = torch.stack(guided).mean()
    return losses


@torch.no_grad()
def looking_gain(model: DocumentModel, lines: list[tuple[torch.Tensor, str]]) -> float:
    """How much the right line's visual tokens lower its transcription loss (nats per
    character) against another line's: 0 while the language model does not look."""
    if len(lines) < 2:
        return 0.0
    tiles, texts = [t for t, _ in lines], [text for _, text in lines]
    prompts = [model.prompt_ids(READ_QUESTION)] * len(lines)
    right = model.loss(model.build_batch(prompts, tiles, answers=texts, padding_side="right"))
    other = tiles[1:] + tiles[:1]
    wrong = model.loss(model.build_batch(prompts, other, answers=texts, padding_side="right"))
    return (wrong - right).item()


@torch.no_grad()
def evaluate(model: DocumentModel, held_out: list[PageSample],
             packed_head: GlyphHead | None = None) -> dict[str, float]:  # fmt: skip
    from tpdoc.answering.anls import anls, cer, exact_match
    from tpdoc.train.glyphs import glyph_accuracy

    model.eval()
    em = an = n = tile_em = tile_n = 0.0
    errors = chars = 0.0
    glyphs_right = glyphs_total = 0
    line_errors = line_chars = 0.0
    lines: list[tuple[torch.Tensor, str]] = []
    tiling = model.config.tiling
    white = white_value(tiling.image_mean, tiling.image_std)
    for k, sample in enumerate(held_out):
        packed = model.encode(sample.views)
        if packed_head is not None:
            # How much of the printed text survives packing (a linear read-out per token).
            tiles = sample.plan.rows * sample.plan.cols
            labels = page_packed_labels(model, sample).to(packed.device)
            right, total, _ = glyph_accuracy(packed_head(packed[:tiles]), labels)
            glyphs_right, glyphs_total = glyphs_right + right, glyphs_total + total
        page = model.page_embeddings(packed, sample.plan)
        batch = model.build_batch(
            [model.prompt_ids(q) for q, _ in sample.qa], [page] * len(sample.qa)
        )
        for (_, answer), gen in zip(
            sample.qa, model.generate(batch, max_new_tokens=24), strict=True
        ):
            em += exact_match(gen.text, [answer])
            an += anls(gen.text, [answer])
            n += 1
        one_tile = single_tile_plan(sample.plan.tile_size)
        if sample.tile_qa:
            local = model.build_batch(
                [model.prompt_ids(q) for _, q, _ in sample.tile_qa],
                [model.page_embeddings(packed[i : i + 1], one_tile) for i, _, _ in sample.tile_qa],
            )
            for (_, _, answer), gen in zip(
                sample.tile_qa, model.generate(local, max_new_tokens=24), strict=True
            ):
                tile_em += exact_match(gen.text, [answer])
                tile_n += 1
        tile = model.page_embeddings(packed[sample.read_tile : sample.read_tile + 1], one_tile)
        read = model.generate(
            model.build_batch([model.prompt_ids(READ_QUESTION)], [tile]), max_new_tokens=96
        )[0]
        reference = sample.read_text[: len(read.text) + 16]
        errors += cer(read.text, reference) * max(1, len(reference))
        chars += max(1, len(reference))
        # One line alone (the same line every evaluation): the first sign of reading.
        views, runs = line_runs(sample, random.Random(k), 1, 1, white)
        texts = [run.text for run in runs]
        if texts:
            line_tile = model.page_embeddings(model.encode(views), one_tile)
            line = model.generate(
                model.build_batch([model.prompt_ids(READ_QUESTION)], [line_tile]),
                max_new_tokens=2 * len(texts[0]) + 8,
            )[0]
            line_errors += cer(line.text, texts[0]) * len(texts[0])
            line_chars += len(texts[0])
            lines.append((line_tile, texts[0]))
    look = looking_gain(model, lines)
    model.train()
    return {"heldout_look_gain": look, "heldout_em": em / max(1, n), "heldout_anls": an / max(1, n),
            "heldout_cer": errors / max(1, chars), "heldout_questions": n,
            "heldout_tile_em": tile_em / max(1, tile_n),
            "heldout_line_cer": line_errors / max(1, line_chars),
            "heldout_packed_glyph_acc": glyphs_right / max(1, glyphs_total)}  # fmt: skip


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
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    tok_dir = out / "tokenizer"
    if init_model is not None and not resume:
        # Continue from a whole saved model (its tokenizer and config come with it).
        model = load_model(init_model).train()
        tokenizer, config = model.tokenizer, model.config
        tokenizer.save_pretrained(str(tok_dir))
    else:
        if (tok_dir / "tokenizer.json").is_file():
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
        else:
            tokenizer = train_tokenizer(tokenizer_corpus(seed, tokenizer_docs), VOCAB_SIZE)
            tokenizer.save_pretrained(str(tok_dir))
        base = config or load_config()
        config = replace(base, text={**base.text, "vocab_size": len(tokenizer)})
        model = DocumentModel.from_config(config, tokenizer)
    if projector is not None:
        # A fresh projector of another kind or scale on the same tower and language model
        # (the projector ablation); a resumed run gets its trained weights back from state.
        config = replace(config, projector=projector)
        model.config = config
        model.projector = build_projector(projector)
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
    groups = [
        {
            "params": [
                *model.projector.parameters(),
                *model.language_model.parameters(),
                *packed_head.parameters(),
            ],
            "lr": lr,
        },  # fmt: skip
        {"params": [*model.vision.parameters(), *head.parameters()], "lr": lr * VISION_LR_FACTOR},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(steps))
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    start = 0
    progress_file = out / "progress.json"
    if resume and progress_file.is_file():
        start = json.loads(progress_file.read_text())["step"]
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
        _rank(json.loads(best_file.read_text()))
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
        accelerator.clip_grad_norm_([p for g in groups for p in g["params"]], GRAD_CLIP)
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
            metrics.update(
                {
                    k: round(v, 4)
                    for k, v in evaluate(
                        raw, held_out, accelerator.unwrap_model(packed_head)
                    ).items()
                }
            )
            sums, counts = dict.fromkeys(sums, 0.0), dict.fromkeys(counts, 0)
            append_json_line(out / "log.jsonl", metrics)
            accelerator.save_state(str(out / "state"))
            save_model(raw, out / "model")
            save_glyph_head(accelerator.unwrap_model(head), out / "model" / HEAD_FILE)
            if _rank(metrics) > best:
                best = _rank(metrics)
                save_model(raw, out / "best")
                (out / "best" / "metrics.json").write_text(json.dumps(metrics, indent=2))
            atomic_write_text(progress_file, json.dumps({"step": step + 1}))
    bar.stop()
    return metrics


def _rank(metrics: dict[str, float]) -> tuple[float, float, float]:
    """Which checkpoint is best: page answers first, then single-tile answers, then reading
    single lines."""
    return (
        metrics["heldout_anls"],
        metrics.get("heldout_tile_em", 0.0),
        -metrics.get("heldout_line_cer", metrics["heldout_cer"]),
    )
