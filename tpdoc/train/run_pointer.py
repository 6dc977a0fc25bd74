"""Stage P of training the embedded model: the pointer learns to answer on true read-outs.

In: the embedded config (with a pointer answer head), a seed and a step budget. Out: in
``OUT``: ``pointer.safetensors`` (the language model and the pointer's re-embedding and
span scores, ``language_model.*`` and ``pointer.*`` keys of a tpdoc model), ``state/``
(resumable) and ``log.jsonl``: losses and held-out exact match on documents in fonts and
layouts never trained on, per row of tiles that holds the answer (``heldout_row_em``) and
per page, every row asked (``heldout_page_em``).

No pixels and no tower: each question's row of tiles is given to the language model as
its true read-out (``tpdoc.train.spans``, slightly corrupted so that the pointer copes
with a read-out's mistakes), so a step costs the language model only. The tower learns
to give that read-out in stage R (``tpdoc.train.run_read``). With ``--read`` (stage J)
the pages are rendered and the pointer learns on the tower's own read-out instead, the
tower, packer and read-out frozen as stage R left them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tpdoc.answering.results import NOT_FOUND
from tpdoc.model.config import ModelConfig
from tpdoc.model.document_model import DocumentModel
from tpdoc.model.pointer import PointerBatch, hidden_states, pointer_inputs
from tpdoc.model.readout import BLANK, NUM_CLASSES, SlotGrid
from tpdoc.train import run_read
from tpdoc.train.optim import GRAD_CLIP, warmup_cosine
from tpdoc.train.spans import NOT_HERE, SpanSample, SpanStream, normalised, span_sample
from tpdoc.train.stage_files import record_step, save_parameters, saved_step

QUESTIONS_PER_PAGE = 4
EVAL_PAGES = 40
NOISE = 0.03  # share of printed slots read as another class, and of blanks as print/100
WEIGHTS_FILE = "pointer.safetensors"
WORDS_KEY = "pointer.words.table"
PAIR_KEY = "pointer.pair.key.weight"
POOL = 8  # batches gathered and sorted by length before training on them


def corrupt(labels: torch.Tensor, rng: torch.Generator, rate: float) -> torch.Tensor:
    """A read-out's kind of mistakes: some printed slots misread or missed, a few blank
    ones read as print."""
    printed = labels != BLANK
    flip = torch.rand(labels.shape, generator=rng) < rate
    alarm = torch.rand(labels.shape, generator=rng) < rate / 100
    noise = torch.randint(1, NUM_CLASSES, labels.shape, generator=rng)
    out = torch.where(printed & flip, noise, labels)
    return torch.where(~printed & alarm, noise, out)


def row_labels(sample: SpanSample, row: int) -> torch.Tensor:
    """The slot classes of one row of tiles by token ``[width, Q, S]``."""
    return sample.labels[row * sample.width : (row + 1) * sample.width]


def row_grid(labels: torch.Tensor, grid: SlotGrid) -> torch.Tensor:
    """``[cols, Q, S]`` -> the row's slot grid ``[R, C * cols]``."""
    return torch.cat(list(grid.to_grid(labels)), dim=1)


def pointer_states(model: DocumentModel, questions: list[str], rows: list[torch.Tensor],
                   keep: list[torch.Tensor]) -> tuple[torch.Tensor, PointerBatch]:  # fmt: skip
    """The language model's last hidden states ``[B, L, D]`` for questions on rows of
    view tokens ``[n_i, Q, D]`` (already in its width), ``keep`` ``[n_i, Q]`` the tokens
    with print, and the batch they were laid out in."""
    tok = model.tokenizer
    asked = [model.pointer.question(tok, q) for q in questions]
    batch = pointer_inputs(
        model.language_model, [ids for ids, _ in asked], rows, keep, tok.eos_token_id,
        model.separators.tile, [words for _, words in asked],
    )  # fmt: skip
    return hidden_states(model.language_model, batch), batch


def pointer_logits(model: DocumentModel, questions: list[str], rows: list[torch.Tensor],
                   keep: list[torch.Tensor], given: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Start and end logits ``[B, N*S + 1]`` (ends given the ``given`` starts, if any)."""
    hidden, batch = pointer_states(model, questions, rows, keep)
    return model.pointer.scores(hidden, batch, given)


def true_tokens(model: DocumentModel, labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The language model's tokens ``[n, Q, D]`` for a true read-out ``[n, Q, S]``; only
    the ``keep`` ones are computed (the rest never enter the sequence)."""
    device = model.device
    labels, keep = labels.to(device), keep.to(device)
    out = torch.zeros(*labels.shape[:2], model.config.text["hidden_size"], device=device)
    out[keep] = model.pointer.embed.labels(labels[keep])
    return out


def printed(labels: torch.Tensor) -> torch.Tensor:
    """Tokens with print ``[..., Q]`` from slot classes ``[..., Q, S]``."""
    return (labels != BLANK).any(-1)


@dataclass(frozen=True)
class Item:
    """One question on one row of tiles, with what the language model sees of the row:
    a true read-out (classes ``[n, Q, S]``) or the tower's own (class probabilities of
    the ``keep`` tokens, ``[k, S, K]``)."""

    question: str
    read: torch.Tensor
    keep: torch.Tensor  # [n, Q] tokens in the sequence
    start: int
    end: int


def true_item(question: str, labels: torch.Tensor, start: int, end: int) -> Item:
    return Item(question, labels, printed(labels), start, end)


def real_items(model: DocumentModel, sample: SpanSample, bf16: bool = True) -> list[Item]:
    """The sample's targets on the tower's own read-out of its rows (no gradient reaches
    the tower). A row keeps the tokens the read-out or the truth says have print, so the
    answer's slots can always be pointed at."""
    tiles = sample.plan.rows * sample.plan.cols
    device = model.device
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model.pointer.read(model.encode(sample.views[:tiles].to(device)))
    probs = logits.float().softmax(-1)  # [tiles, Q, S, K]
    keep = (probs.argmax(-1) != BLANK).any(-1) | printed(sample.labels).to(device)  # [tiles, Q]
    cols = sample.width
    items = []
    for t in sample.targets:
        part = slice(t.row * cols, (t.row + 1) * cols)
        items.append(Item(t.question, probs[part][keep[part]], keep[part], t.start, t.end))
    return items


def similar_batches(stream: Iterable[list[Item]], batch: int, rng: random.Random,
                    pool: int = POOL) -> Iterator[list[Item]]:  # fmt: skip
    """Batches of ``batch`` items of similar length, in random order: items are gathered
    ``pool`` batches at a time and sorted by how many tokens enter their sequence, so
    little of a padded batch is padding (rows differ by ten times in printed tokens)."""
    items: list[Item] = []
    for more in stream:
        items += more
        if len(items) < pool * batch:
            continue
        items.sort(key=lambda item: (int(item.keep.sum()), len(item.question)))
        chunks = [items[i : i + batch] for i in range(0, pool * batch, batch)]
        items = items[pool * batch :]
        rng.shuffle(chunks)
        yield from chunks


def step_loss(model: DocumentModel, items: list[Item], rng: torch.Generator,
              noise: float) -> torch.Tensor:  # fmt: skip
    """Cross-entropy of the start and end slots (or "not here") of a batch of items; true
    read-outs are corrupted first (``corrupt``)."""
    rows, keep = [], []
    for item in items:
        if item.read.is_floating_point():  # the tower's read-out of the kept tokens
            tokens = torch.zeros(
                *item.keep.shape, model.config.text["hidden_size"], device=model.device
            )
            tokens[item.keep] = model.pointer.embed(item.read.to(model.device))
            rows.append(tokens)
            keep.append(item.keep)
        else:
            read = corrupt(item.read, rng, noise)
            keep.append((printed(read) | item.keep).to(model.device))
            rows.append(true_tokens(model, read, keep[-1]))
    # Ends are scored given the true start (where the head pairs them): teacher forcing.
    given = torch.tensor([i.start for i in items], device=model.device)
    start, end = pointer_logits(model, [item.question for item in items], rows, keep, given)
    null = start.shape[1] - 1
    s = torch.tensor([null if i.start == NOT_HERE else i.start for i in items], device=start.device)
    e = torch.tensor([null if i.end == NOT_HERE else i.end for i in items], device=start.device)
    ce = torch.nn.functional.cross_entropy
    return (ce(start, s) + ce(end, e)) / 2


@torch.no_grad()
def answer_page(model: DocumentModel, question: str, rows: list[torch.Tensor],
                keep: list[torch.Tensor], grids: list[torch.Tensor]) -> str:  # fmt: skip
    """The page's answer: the most probable span over its rows, else "not found"."""
    hidden, batch = pointer_states(model, [question] * len(rows), rows, keep)
    slots = [batch.tokens * model.config.slot_grid.per_token] * len(rows)  # one page: one width
    spans = model.pointer.spans(hidden, batch, grids, slots)
    found = [s for s in spans if s.text is not None]
    return max(found, key=lambda s: s.logprob).text if found else NOT_FOUND


@torch.no_grad()
def evaluate(model: DocumentModel, held_out: list[SpanSample], real: bool = False
             ) -> dict[str, float]:  # fmt: skip
    """Held-out exact match on the true read-out, or with ``real`` on the tower's own read
    of the rendered pages (every step from pixels to answer, as at answer time)."""
    from tpdoc.answering.anls import anls, exact_match
    from tpdoc.model.pointer import read_page

    model.eval()
    grid = model.config.slot_grid
    row_right = row_n = page_right = page_anls = page_n = 0.0
    wrong = {"not_found": 0, "overlap": 0, "other": 0}  # how answers on the right row fail
    for sample in held_out:
        if real:
            cols = sample.width
            n = sample.plan.rows * sample.plan.cols // cols
            packed = model.encode(sample.views.to(model.device))
            read = read_page(model.pointer, packed, n, cols)
            keep = [read.keep[r * cols : (r + 1) * cols] for r in range(n)]
            rows = [read.tokens[r * cols : (r + 1) * cols] for r in range(n)]
            grids = list(read.rows)
        else:
            n = sample.plan.rows * sample.plan.cols // sample.width
            labels = [row_labels(sample, r) for r in range(n)]
            keep = [printed(x).to(model.device) for x in labels]
            rows = [true_tokens(model, x, k) for x, k in zip(labels, keep, strict=True)]
            grids = [row_grid(x, grid) for x in labels]
        answers = dict(sample.asked)
        for target in sample.targets:
            if target.start == NOT_HERE:
                continue
            r = slice(target.row, target.row + 1)
            got = answer_page(model, target.question, rows[r], keep[r], grids[r])
            right = exact_match(got, [answers[target.question]])
            row_right += right
            row_n += 1
            if not right:
                wrong[error_kind(got, answers[target.question])] += 1
        for question, answer in sample.asked:
            got = answer_page(model, question, rows, keep, grids)
            page_right += exact_match(got, [answer])
            page_anls += anls(got, [answer])
            page_n += 1
    model.train()
    return {
        "heldout_row_em": row_right / max(1, row_n),
        "heldout_page_em": page_right / max(1, page_n),
        "heldout_page_anls": page_anls / max(1, page_n),
        "heldout_questions": page_n,
        **{f"heldout_row_{kind}": n / max(1, row_n) for kind, n in wrong.items()},
    }


def error_kind(got: str, answer: str) -> str:
    """How a wrong answer on the answer's row fails: "not found", text that overlaps the
    answer (a span that starts or ends in the wrong place), or other text (another field)."""
    if got == NOT_FOUND:
        return "not_found"
    a, b = normalised(got).lower(), normalised(answer).lower()
    return "overlap" if a in b or b in a else "other"


def held_out_pages(config: ModelConfig, seed: int, n: int, render: bool = False,
                   single_tiles: bool = False,
                   held_out_phrasings: bool = True) -> list[SpanSample]:  # fmt: skip
    """``n`` pages in held-out fonts and layouts, asked in held-out phrasings (or, with
    ``held_out_phrasings`` False, in training ones, to tell wording from reading)."""
    rng = random.Random(f"heldout/{seed}")
    pages: list[SpanSample] = []
    while len(pages) < n:
        sample = span_sample(
            rng, config.tiling, config.slot_grid, "eval", QUESTIONS_PER_PAGE, render=render,
            single_tiles=single_tiles, held_out_phrasings=held_out_phrasings,
        )  # fmt: skip
        if sample is not None:
            pages.append(sample)
    return pages


def trained_parameters(model: DocumentModel) -> dict[str, torch.nn.Parameter]:
    """What stage P trains: the language model and the pointer, not its read-out."""
    return {
        name: p
        for name, p in model.named_parameters()
        if name.startswith("language_model.")
        or (name.startswith("pointer.") and not name.startswith("pointer.readout."))
    }


def answer_parts(path: Path | None, slots: int = SlotGrid().per_token) -> dict[str, int]:
    """The widths of the optional answer parts a stage-P file holds, 0 for those it does
    not: question words (``tpdoc.model.question_words``) and ends given starts
    (``tpdoc.model.span_pairs``), as ``AnswerConfig`` fields."""
    from safetensors import safe_open

    parts = {"question_words": 0, "end_given_start": 0}
    if path is None or not path.is_file():
        return parts
    with safe_open(str(path), framework="pt") as f:
        names = set(f.keys())
        if WORDS_KEY in names:
            parts["question_words"] = f.get_slice(WORDS_KEY).get_shape()[1]
        if PAIR_KEY in names:
            parts["end_given_start"] = f.get_slice(PAIR_KEY).get_shape()[0] // slots
    return parts


def with_parts(config: ModelConfig, **parts: int) -> ModelConfig:
    """``config`` with these ``AnswerConfig`` widths (0: the part left out)."""
    return replace(config, answer=replace(config.answer, **parts))


def new_model(config: ModelConfig, base: Path | None = None) -> DocumentModel:
    """A model of ``config`` with the tokenizer of ``base`` (default: the embedded model),
    its question words (if any) filled from the ``wordllama`` package."""
    from tpdoc.model.question_words import from_wordllama
    from tpdoc.weights.checkpoint import load_tokenizer
    from tpdoc.weights.registry import resolve_model

    model = DocumentModel.from_config(config, load_tokenizer(resolve_model(base)))
    if model.pointer is not None and model.pointer.words is not None:
        from_wordllama(model.pointer.words)
    return model


def save_weights(model: DocumentModel, path: Path) -> None:
    # Tied embeddings are one parameter: named_parameters lists the LM head's table once.
    save_parameters(trained_parameters(model), path)


def load_weights(model: DocumentModel, path: Path, strict: bool = True) -> None:
    """Stage P's weights from ``path``; ``strict=False`` lets parameters the file predates
    keep their initial values (every tensor in the file must still fit)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    params = trained_parameters(model)
    unknown, missing = sorted(set(state) - set(params)), sorted(set(params) - set(state))
    if unknown or (missing and strict):
        raise KeyError(f"{path}: unexpected keys {unknown[:5]}, missing keys {missing[:5]}")
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


def train_pointer(out: Path, *, steps: int, batch: int = 16, lr: float = 1e-3, seed: int = 0,
                  eval_every: int = 500, workers: int = 1, resume: bool = False,
                  init: Path | None = None, noise: float = NOISE,
                  eval_pages: int = EVAL_PAGES, read: Path | None = None,
                  device: str = "cpu", bf16: bool = True, single_tiles: bool = False,
                  question_words: int | None = None, reword: float = 0.0,
                  end_given_start: int | None = None,
                  config: ModelConfig | None = None) -> dict[str, float]:  # fmt: skip
    """Stage P; with ``read`` (stage R's weights, kept frozen) the pointer trains and is
    measured on the tower's own read-out of rendered pages instead of the true one; with
    ``single_tiles`` on single tiles instead of rows of tiles (the shorter first lesson).
    ``question_words``: the width of pretrained word vectors beside the question's bytes
    and ``end_given_start``: the width of end-given-start scores (each by default as the
    weights it resumes or starts from have them); ``reword``: the share
    of a training question's words swapped for a neighbour among them
    (``tpdoc.train.reword``)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    start = saved_step(out) if resume else 0
    if config is None:
        parts = answer_parts(out / WEIGHTS_FILE if start else init)
        for name, width in (("question_words", question_words),
                            ("end_given_start", end_given_start)):  # fmt: skip
            if width is not None:
                parts[name] = width
        config = with_parts(run_read.read_config(read), **parts)
    model = new_model(config).train()
    if read is not None:
        run_read.load_weights(model, read)
    model.to(device)
    params = list(trained_parameters(model).values())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    if start:
        load_weights(model, out / WEIGHTS_FILE)  # weights only: the optimizer starts afresh
    elif init is not None:
        load_weights(model, init, strict=False)
    scheduler = warmup_cosine(optimizer, steps, start)
    real = read is not None
    held_out = held_out_pages(config, seed, eval_pages, render=real, single_tiles=single_tiles)
    stream = SpanStream(f"{seed}/{start}", config.tiling, config.slot_grid, "train",
                        QUESTIONS_PER_PAGE, render=real, single_tiles=single_tiles)  # fmt: skip
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0
    )
    noise_rng = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    seen, started = 0, time.perf_counter()
    metrics: dict[str, float] = {}
    step = start

    def items_of(sample: SpanSample) -> list[Item]:
        if real:
            return real_items(model, sample, bf16)
        return [true_item(t.question, row_labels(sample, t.row), t.start, t.end)
                for t in sample.targets]  # fmt: skip

    order_rng = random.Random(f"batches/{seed}/{start}")
    rewording = None
    if reword > 0:
        from tpdoc.synth.questions import PARAPHRASES
        from tpdoc.train.reword import Rewording

        if model.pointer.words is None:
            raise ValueError("--reword needs question words (--question-words)")
        phrasings = [p for table in PARAPHRASES.values() for p in table]
        rewording = Rewording(model.pointer.words, phrasings, reword)
    reword_rng = random.Random(f"reword/{seed}/{start}")
    for chunk in similar_batches(map(items_of, loader), batch, order_rng):
        if rewording is not None:
            chunk = [replace(i, question=rewording(i.question, reword_rng)) for i in chunk]
        loss = step_loss(model, chunk, noise_rng, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        seen += batch
        step += 1
        if step % eval_every == 0 or step == steps:
            metrics = {
                "step": step,
                "loss": round(sum(losses) / len(losses), 4),
                "questions_per_s": round(seen / (time.perf_counter() - started), 1),
                "lr": scheduler.get_last_lr()[0],
                **{k: round(v, 4) for k, v in evaluate(model, held_out, real).items()},
            }
            record_step(out, metrics, lambda: save_weights(model, out / WEIGHTS_FILE))
            losses, seen, started = [], 0, time.perf_counter()
        if step >= steps:
            break
    return metrics
