"""The embedded model's answer head: copy the answer from the page by pointing at it.

In: a question's token ids and the packed tokens of a row of tiles ``[n, Q, D]``
(TokenPacker's output). Out: the span of slots (``tpdoc.model.readout``) that answers it, with
its text as the model reads it, its log-probability and its box, or "not in this row".

The language model sees the question first and then the tokens of one row of the page's
tiles (a line of print stays within one tile row), each as its read-out re-embedded
(``ReadoutEmbedding``), then an end marker: under causal attention every visual token has
seen the question. A linear head on each visual token's last hidden state scores every
one of its slots as the answer's first and last character; the end marker's state scores
"not here". A page is asked row by row (the global view is left out: its print is too
small to copy from) and the most probable span wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tpdoc.errors import ConfigError
from tpdoc.model.question_words import QuestionWords
from tpdoc.model.readout import (
    BLANK,
    NUM_CLASSES,
    ReadoutEmbedding,
    ReadoutHead,
    SlotGrid,
    SpanText,
    span_text,
)
from tpdoc.model.span_pairs import EndGivenStart

ANSWER_KINDS = ("generate", "pointer")
TOP_K = 8  # starts and ends combined when searching the best span
MAX_SPAN_ROWS = 12  # slot rows one answer may cover (about three lines)
# "Not here" wins a row from this share of the start and end probability. Chosen on
# validation pages (seed 7, not the gates' 100): from 0.5 to 0.85, row exact match rose
# 0.44 -> 0.52 and page exact match (absent answers included) 0.41 -> 0.43.
NOT_HERE_AT = 0.85


@dataclass(frozen=True)
class AnswerConfig:
    """How the model answers: ``generate`` text (published checkpoints) or point at a
    ``pointer`` span of its read-out (the embedded model); a tower cell is split into
    ``rows x cols`` sub-cells for the read-out."""

    kind: str = "generate"
    rows: int = 2
    cols: int = 4
    readout_hidden: int = 768  # hidden units of the per-token read-out
    # Added to the read-out's blank logit at answer time: the read-out is trained with blank
    # slots down-weighted, so it over-reads print; 1.0 read held-out tiles best (CER).
    blank_bias: float = 1.0
    # Pretrained word vectors beside the question's bytes (``tpdoc.model.question_words``):
    # their width (0: none) and how many word pieces the table holds.
    question_words: int = 0
    question_vocab: int = 32000
    # Ends scored given the start (``tpdoc.model.span_pairs``): the width of the start and
    # end vectors paired per slot (0: ends scored apart from starts).
    end_given_start: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ANSWER_KINDS:
            raise ConfigError(f"answer kind must be one of {ANSWER_KINDS}, got {self.kind!r}")
        for name in ("question_words", "question_vocab", "end_given_start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"answer {name} must be an integer >= 0, got {value!r}")
        for name in ("rows", "cols", "readout_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"answer {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Span:
    """One view's best answer: its text, log-probability and box (view pixels); or the
    "not here" verdict (``text`` None) with its log-probability."""

    text: str | None
    logprob: float
    box: tuple[float, float, float, float] | None = None
    null_logprob: float = 0.0


class PointerHead(nn.Module):
    """Read-out, re-embedding and span scores of a pointer model."""

    def __init__(self, grid: SlotGrid, dim: int, classes: int = NUM_CLASSES,
                 readout_hidden: int = 768, blank_bias: float = 0.0,
                 words: tuple[int, int] | None = None, pair: int = 0,
                 packed_dim: int | None = None) -> None:  # fmt: skip
        """``dim``: the language model's width; ``packed_dim``: the packed tokens' (default
        ``dim``); ``words``: (vocabulary, width) of the question words, or None for none;
        ``pair``: the width of end-given-start scores (0: none)."""
        super().__init__()
        self.grid, self.blank_bias = grid, blank_bias
        s = grid.per_token
        self.readout = ReadoutHead(packed_dim or dim, s, classes, readout_hidden)
        self.embed = ReadoutEmbedding(s, classes, dim)
        self.span = nn.Linear(dim, 2 * s)  # start and end score of each slot
        self.null = nn.Linear(dim, 2)
        self.words = QuestionWords(*words, dim) if words else None
        self.pair = EndGivenStart(dim, s, pair) if pair else None

    def question(self, tokenizer, text: str) -> tuple[list[int], torch.Tensor | None]:
        """A question's byte token ids, and what its words add to their embeddings
        ``[n, D]`` (None without question words)."""
        if self.words is None:
            return tokenizer(text).input_ids, None
        enc = tokenizer(text, return_offsets_mapping=True)
        return enc.input_ids, self.words(text, enc.offset_mapping)

    def read(self, packed: torch.Tensor) -> torch.Tensor:
        """``[V, Q, D]`` -> slot logits ``[V, Q, S, K]`` as answers use them (the blank
        logit raised by ``blank_bias``; training reads ``readout`` itself)."""
        logits = self.readout(packed)
        shift = torch.zeros(logits.shape[-1], device=logits.device, dtype=logits.dtype)
        shift[BLANK] = self.blank_bias
        return logits + shift

    def tokens(self, logits: torch.Tensor) -> torch.Tensor:
        """Read-out logits ``[V, Q, S, K]`` -> the language model's view tokens ``[V, Q, D]``."""
        return self.embed(logits.float().softmax(-1))

    def scores(self, hidden: torch.Tensor, batch: PointerBatch,
               given: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Last hidden states ``[B, L, D]`` -> start and end logits ``[B, N*S + 1]``: every
        slot of the row's ``N`` tokens, token-major, then "not here" (from the end marker).
        Tokens left out of the sequence (blank ones) cannot be pointed at. With ``given``
        ``[B]`` start slots (training: the true ones; -1 for none), ends are scored given
        them when the head pairs ends with starts."""
        b, kept = batch.visual.shape
        s = self.grid.per_token
        rows = torch.arange(b, device=hidden.device)
        span = self.span(hidden[rows[:, None], batch.visual]).float()  # [B, kept, 2*S]
        full = torch.full((b, batch.tokens + 1, 2 * s), -1e9, device=hidden.device)
        index = batch.token.masked_fill(~batch.valid, batch.tokens)  # padding -> a spare row
        full[rows[:, None], index] = span
        full = full[:, :-1].view(b, batch.tokens, 2, s)
        null = self.null(hidden[rows, batch.end_at]).float()  # [B, 2]
        start = torch.cat([full[:, :, 0].reshape(b, -1), null[:, :1]], dim=1)
        end = torch.cat([full[:, :, 1].reshape(b, -1), null[:, 1:]], dim=1)
        if given is not None and self.pair is not None:
            paired = self.ends_given(hidden, batch, end, given.clamp(min=0)[:, None])[:, 0]
            end = torch.where((given >= 0)[:, None], paired, end)
        return start, end  # [B, N*S + 1] each

    def ends_given(self, hidden: torch.Tensor, batch: PointerBatch, end: torch.Tensor,
                   starts: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """End logits ``[B, N*S + 1]`` given each of ``starts`` ``[B, k]`` -> ``[B, k, N*S + 1]``
        ("not here" unchanged)."""
        b = hidden.shape[0]
        rows = torch.arange(b, device=hidden.device)
        index = batch.token.masked_fill(~batch.valid, batch.tokens)
        states = hidden[rows[:, None], batch.visual]  # [B, K, D]
        add = self.pair(states, index, batch.tokens, starts)  # [B, k, N*S]
        return end[:, None] + torch.cat([add, add.new_zeros(*add.shape[:2], 1)], dim=2)

    def spans(self, hidden: torch.Tensor, batch: PointerBatch, grids: Sequence[torch.Tensor],
              slots: Sequence[int]) -> list[Span]:  # fmt: skip
        """Each row's best ``Span`` from its hidden states, slot classes ``grids[i]`` and
        number of slots ``slots[i]`` (rows of different widths share a batch)."""
        start, end = self.scores(hidden, batch)
        given = None
        if self.pair is not None:  # the likely starts' own end logits
            top = start[:, :-1].topk(min(TOP_K, start.shape[1] - 1)).indices  # [B, k]
            given = (top, self.ends_given(hidden, batch, end, top))
        out = []
        for i, n in enumerate(slots):
            s = torch.cat([start[i, :n], start[i, -1:]])
            e = torch.cat([end[i, :n], end[i, -1:]])
            pairs = None
            if given is not None:
                keep = given[0][i] < n
                ends = given[1][i][keep]
                pairs = (given[0][i][keep].tolist(), torch.cat([ends[:, :n], ends[:, -1:]], 1))
            out.append(best_span(s, e, grids[i], self.grid, pairs))
        return out


@dataclass
class PointerBatch:
    inputs: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L]
    positions: torch.Tensor  # [B, L] each input's place in the full layout
    visual: torch.Tensor  # [B, K] where each kept visual token is in the sequence
    token: torch.Tensor  # [B, K] its index among the row's tokens (tile-major)
    valid: torch.Tensor  # [B, K] (rows keep different numbers of tokens)
    end_at: torch.Tensor  # [B]
    tokens: int  # N: the most tokens a row has


def pointer_inputs(language_model: nn.Module, questions: Sequence[Sequence[int]],
                   views: Sequence[torch.Tensor], keep: Sequence[torch.Tensor], end_id: int,
                   sep_id: int, words: Sequence[torch.Tensor | None] | None = None
                   ) -> PointerBatch:  # fmt: skip
    """Per row: question ids, then its tiles' tokens ``views[i]`` ``[n_i, Q, D]`` (a row of
    a page's tiles, the tile separator between them), then the end marker; right-padded.
    Only the tokens ``keep[i]`` ``[n_i, Q]`` marks (those with print) enter the sequence,
    each at its place in the full layout, so blank paper costs nothing. ``words[i]``
    ``[len(ids), D]``, when given, is added to the question's embeddings."""
    embed = language_model.get_input_embeddings()
    device, dtype = views[0].device, views[0].dtype
    marks = embed(torch.tensor([sep_id, end_id], device=device)).to(dtype)  # [2, D]
    seqs, places, where, which = [], [], [], []
    for k, (ids, tiles, kept) in enumerate(zip(questions, views, keep, strict=True)):
        n, q, _ = tiles.shape
        text = embed(torch.tensor(list(ids), dtype=torch.long, device=device)).to(dtype)
        if words is not None and words[k] is not None:
            text = text + words[k].to(device=device, dtype=dtype)  # [len(ids), D]
        first = len(ids)
        pieces, place = [text], list(range(first))
        at: list[int] = []
        token = torch.nonzero(kept.reshape(-1)).flatten()  # [K] kept tokens, tile-major
        for i in range(n):
            if i:
                pieces.append(marks[:1])
                place.append(first + i * (q + 1) - 1)
            pieces.append(tiles[i][kept[i]])
            at += range(len(place), len(place) + int(kept[i].sum()))
            place += (first + i * (q + 1) + torch.nonzero(kept[i]).flatten()).tolist()
        pieces.append(marks[1:])
        place.append(first + n * (q + 1) - 1)
        seqs.append(torch.cat(pieces))  # [L_i, D]
        places.append(place)
        where.append(at)
        which.append(token)
    b = len(seqs)
    width = max(x.shape[0] for x in seqs)
    most = max(1, max(len(at) for at in where))
    inputs = torch.zeros(b, width, seqs[0].shape[-1], device=device, dtype=dtype)
    mask = torch.zeros(b, width, dtype=torch.long, device=device)
    positions = torch.zeros(b, width, dtype=torch.long, device=device)
    visual = torch.zeros(b, most, dtype=torch.long, device=device)
    token = torch.zeros(b, most, dtype=torch.long, device=device)
    valid = torch.zeros(b, most, dtype=torch.bool, device=device)
    for i, (seq, place, at) in enumerate(zip(seqs, places, where, strict=True)):
        length = seq.shape[0]
        inputs[i, :length] = seq
        mask[i, :length] = 1
        positions[i, :length] = torch.tensor(place, device=device)
        positions[i, length:] = place[-1] + 1
        visual[i, : len(at)] = torch.tensor(at, dtype=torch.long, device=device)
        token[i, : len(at)] = which[i]
        valid[i, : len(at)] = True
    end_at = mask.sum(1) - 1
    tokens = max(v.shape[0] * v.shape[1] for v in views)
    return PointerBatch(inputs, mask, positions, visual, token, valid, end_at, tokens)


def hidden_states(language_model: nn.Module, batch: PointerBatch) -> torch.Tensor:
    """The body of a ``...ForCausalLM`` (no LM head): ``[B, L, D]`` -> ``[B, L, D]``."""
    body = language_model.get_decoder()
    return body(
        inputs_embeds=batch.inputs, attention_mask=batch.mask, position_ids=batch.positions
    ).last_hidden_state


def slot_position(index: int, grid: SlotGrid) -> tuple[int, int]:
    """Slot index in a row of tiles (tile-major, then token-major) -> (row, column) of the
    row's slot grid ``[R, C * tiles]``."""
    tile, rest = divmod(index, grid.out_grid**2 * grid.per_token)
    token, sub = divmod(rest, grid.per_token)
    gy, gx = divmod(token, grid.out_grid)
    ty, tx = divmod(sub, grid.token_cols)
    return gy * grid.token_rows + ty, tile * grid.slot_cols + gx * grid.token_cols + tx


def slot_index(row: int, col: int, grid: SlotGrid) -> int:
    """(row, column) of a row's slot grid -> slot index (``slot_position``'s inverse)."""
    tile, col = divmod(col, grid.slot_cols)
    gy, ty = divmod(row, grid.token_rows)
    gx, tx = divmod(col, grid.token_cols)
    token = gy * grid.out_grid + gx
    return (tile * grid.out_grid**2 + token) * grid.per_token + ty * grid.token_cols + tx


def best_span(start: torch.Tensor, end: torch.Tensor, classes: torch.Tensor, grid: SlotGrid,
              given: tuple[list[int], torch.Tensor] | None = None) -> Span:  # fmt: skip
    """One row of tiles' answer from its start and end logits ``[N*S + 1]`` and its read
    slot classes ``[R, C * tiles]``; ``given``: candidate starts with the end logits
    given each ``[k, N*S + 1]``, searched instead of the likely starts with ``end``.

    "Not here" (the last logit) wins when it takes at least ``NOT_HERE_AT`` of the start
    and end probability. Otherwise the answer is the text with the most probability among the
    pairs of likely starts and ends: neighbouring slots often give the same text (a blank
    slot before the first character reads as nothing), so their mass is pooled. Its
    log-probability: that the answer is here, times the text's share of the pooled mass.
    """
    classes = classes.cpu()  # read slot by slot below: no device round trip per slot
    slots = classes.shape[1] // grid.slot_cols * grid.out_grid**2 * grid.per_token
    ps, pe = start.float().cpu().softmax(-1), end.float().cpu().softmax(-1)
    null = float(ps[-1] + pe[-1]) / 2
    k = min(TOP_K, slots)
    mass: dict[str, float] = {}
    boxes: dict[str, tuple[float, tuple[float, float, float, float] | None]] = {}
    if given is None:
        pairs = [(i, pe) for i in ps[:slots].topk(k).indices.tolist()]
    else:
        pairs = list(zip(given[0], given[1].float().cpu().softmax(-1), strict=True))
    for i, ends in pairs:
        for j in ends[:slots].topk(k).indices.tolist():
            (r0, c0), (r1, c1) = slot_position(i, grid), slot_position(j, grid)
            if abs(r1 - r0) > MAX_SPAN_ROWS:
                continue
            read: SpanText = span_text(classes, (r0, c0), (r1, c1), grid)
            if not read.text:
                continue
            p = float(ps[i] * ends[j])
            mass[read.text] = mass.get(read.text, 0.0) + p
            if p > boxes.get(read.text, (-1.0, None))[0]:
                boxes[read.text] = (p, read.box)
    null_logprob = math.log(max(null, 1e-12))
    if not mass or null >= NOT_HERE_AT:
        return Span(None, null_logprob, None, null_logprob)
    text = max(mass, key=mass.__getitem__)
    share = mass[text] / sum(mass.values())
    return Span(text, math.log(max(1e-12, (1 - null) * share)), boxes[text][1], null_logprob)


@dataclass(frozen=True)
class PageRead:
    """A page's read-out: slot classes per tile row ``[R, C * cols]``, the re-embedded
    tokens ``[tiles, Q, D]`` and which of them have print ``[tiles, Q]``."""

    rows: tuple[torch.Tensor, ...]
    tokens: torch.Tensor
    keep: torch.Tensor


def read_page(head: PointerHead, packed: torch.Tensor, rows: int, cols: int) -> PageRead:
    """Packed views of a page ``[V, Q, D']`` (tiles row-major, then the global view) ->
    its ``PageRead``; only tokens with print are re-embedded (``[tiles, Q, D]``)."""
    tiles = packed[: rows * cols]
    logits = head.read(tiles)  # [tiles, Q, S, K]
    classes = logits.argmax(-1)  # [tiles, Q, S]
    keep = (classes != BLANK).any(-1)  # [tiles, Q]
    width = head.embed.bias.shape[0]  # the language model's D, not the packed tokens'
    tokens = torch.zeros(*tiles.shape[:2], width, device=tiles.device)
    if bool(keep.any()):
        tokens[keep] = head.tokens(logits[keep])
    grid = head.grid
    per_row = tuple(
        torch.cat(list(grid.to_grid(classes[r * cols : (r + 1) * cols])), dim=1)
        for r in range(rows)
    )
    return PageRead(per_row, tokens, keep)


Question = tuple[Sequence[int], torch.Tensor | None]  # ids, and words added (or None)


def point_pages(language_model: nn.Module, head: PointerHead,
                asks: Sequence[tuple[Question, PageRead, int]], end_id: int, sep_id: int,
                rows_per_batch: int = 16) -> list[list[Span]]:  # fmt: skip
    """For each ``(question, page read-out, cols)``, the question as ``PointerHead.question``
    gives it (ids, words): the best ``Span`` of every tile row
    (rows without print say "not here" without running). Rows of all pages share the
    language model's batches."""
    jobs = []  # (ask, row)
    for a, (_, read, cols) in enumerate(asks):
        for r in range(len(read.rows)):
            if bool(read.keep[r * cols : (r + 1) * cols].any()):
                jobs.append((a, r))
    out: list[list[Span]] = [
        [Span(None, 0.0) for _ in range(len(read.rows))] for _, read, _ in asks
    ]
    for i in range(0, len(jobs), rows_per_batch):
        chunk = jobs[i : i + rows_per_batch]
        ids, words, views, keep = [], [], [], []
        for a, r in chunk:
            (question, said), read, cols = asks[a]
            part = slice(r * cols, (r + 1) * cols)
            ids.append(question)
            words.append(said)
            views.append(read.tokens[part].to(head.null.weight.dtype))
            keep.append(read.keep[part])
        batch = pointer_inputs(language_model, ids, views, keep, end_id, sep_id, words)
        grids = [asks[a][1].rows[r] for a, r in chunk]
        g = head.grid
        slots = [x.shape[1] // g.slot_cols * g.out_grid**2 * g.per_token for x in grids]
        spans = head.spans(hidden_states(language_model, batch), batch, grids, slots)
        for (a, r), span in zip(chunk, spans, strict=True):
            out[a][r] = span
    return out


def page_answer(spans: Sequence[Span], tile: int, fit: tuple[int, int]) -> Span:
    """The page's answer from its rows' spans: the most probable one found, its box as
    fractions of the page (``fit``: the page's size on the tile canvas, height and
    width); with none found, "not found" with the log-probability that no row has it."""
    found = [(r, s) for r, s in enumerate(spans) if s.text is not None]
    if not found:
        return Span(None, sum(s.null_logprob for s in spans))
    r, best = max(found, key=lambda item: item[1].logprob)
    box = None
    if best.box is not None:
        x0, y0, x1, y1 = best.box
        h, w = fit
        box = (
            round(min(1.0, x0 / w), 4),
            round(min(1.0, (y0 + r * tile) / h), 4),
            round(min(1.0, x1 / w), 4),
            round(min(1.0, (y1 + r * tile) / h), 4),
        )
    return Span(best.text, best.logprob, box, best.null_logprob)
