"""Rich renderings of tpdoc results for people at a terminal.

In: library results (``DocumentBudget``, ``AnswerResult``, ``BatchSummary``,
``EvalSummary``, ``CacheInfo``). Out: ``rich`` renderables (or one-line strings);
printing, and the choice of stream, is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.panel import Panel

    from tpdoc.answering.batch import BatchSummary
    from tpdoc.answering.budget import DocumentBudget
    from tpdoc.answering.cache import CacheInfo
    from tpdoc.answering.chat import ChatTurn
    from tpdoc.answering.evaluate import EvalSummary
    from tpdoc.answering.results import AnswerResult


def budget_table(budget: DocumentBudget) -> Table:
    """Per-page grid, views and visual tokens with and without TokenPacker, and totals."""
    g = budget.geometry
    table = Table(
        title=Text(budget.file),
        caption=(
            f"tile {g.tile_size}px, max {g.max_tiles} tiles, {g.tiling.mode} mode, "
            f"scale {g.scale}: {g.tokens_per_tile} tokens per tile "
            f"(uncompressed {g.tokens_per_tile_uncompressed})"
        ),
        show_footer=True,
    )
    pages = budget.pages
    total = budget.total_visual_tokens
    total_raw = budget.total_visual_tokens_uncompressed
    table.add_column("page", justify="right", footer="total")
    table.add_column("pixels (w×h)", justify="right")
    table.add_column("grid", justify="center")
    table.add_column("views", justify="right", footer=str(sum(p.plan.num_views for p in pages)))
    table.add_column("visual tokens", justify="right", footer=f"{total:,}")
    table.add_column("uncompressed", justify="right", footer=f"{total_raw:,}")
    table.add_column("ratio", justify="right", footer=f"{budget.ratio:.1%}")
    for p in pages:
        table.add_row(
            str(p.page),
            f"{p.plan.width}×{p.plan.height}",
            f"{p.plan.rows}×{p.plan.cols}",
            str(p.plan.num_views),
            f"{p.visual_tokens:,}",
            f"{p.visual_tokens_uncompressed:,}",
            f"{p.ratio:.1%}",
        )
    return table


# ------------------------------------------------------------ ask, batch, eval, cache

STAGE_ORDER = ("render", "cache", "vision", "packer", "prefill", "decode")


def answer_panel(result: AnswerResult) -> Panel:
    """The answer, with the page it came from and its confidence."""
    from rich.panel import Panel

    return Panel(
        Text(result.answer or "(no answer)"),
        title=Text(f"{result.file} · page {result.page}"),
        title_align="left",
        subtitle=f"confidence {_confidence(result.confidence)}",
        subtitle_align="right",
    )


def page_answers_table(result: AnswerResult) -> Table:
    """Every asked page's answer and confidence (``--all-pages``), the best marked."""
    table = Table(title="answers per page", title_justify="left")
    table.add_column("page", justify="right")
    table.add_column("answer")
    table.add_column("confidence", justify="right")
    for p in result.pages:
        mark = " ◀" if p.page == result.page else ""
        table.add_row(str(p.page), Text(p.answer), _confidence(p.confidence) + mark)
    return table


def answer_report(result: AnswerResult) -> Table:
    """Token budget of a question: per page grid, tiles, visual tokens (and uncompressed),
    prompt tokens, context against the limit; time per stage in the caption."""
    t = result.tokens
    limit = "∞" if t.context_limit is None else f"{t.context_limit:,}"
    table = Table(title="token budget", title_justify="left", show_footer=True)
    table.add_column("page", justify="right", footer="total")
    table.add_column("grid", justify="center")
    table.add_column(
        "tiles", justify="right", footer=str(sum(p.plan.plan.num_views for p in result.pages))
    )
    table.add_column("cap·scale", justify="center")
    table.add_column("visual", justify="right", footer=f"{t.visual:,}")
    table.add_column("uncompressed", justify="right", footer=f"{t.visual_uncompressed:,}")
    table.add_column("prompt", justify="right", footer=f"{t.text:,}")
    table.add_column("context / limit", justify="right", footer=f"{t.context:,} / {limit}")
    table.add_column("cached", justify="center")
    answer_room = t.context - max(p.plan.visual_tokens for p in result.pages) - t.text
    for p in result.pages:
        plan = p.plan
        cap = "1 tile" if plan.max_tiles == 1 else f"{plan.max_tiles}"
        down = " ↓" if plan.planned_down else ""
        context = plan.visual_tokens + t.text + answer_room
        table.add_row(
            str(p.page),
            f"{plan.plan.rows}×{plan.plan.cols}",
            str(plan.plan.num_views),
            f"{cap}·{plan.scale}{down}",
            f"{plan.visual_tokens:,}",
            f"{plan.visual_tokens_uncompressed:,}",
            f"{t.text:,}",
            f"{context:,} / {limit}",
            "yes" if p.cached else "",
        )
    notes = [timings_line(result.timings)]
    if any(p.plan.planned_down for p in result.pages):
        notes.append(f"↓ planned down to fit {_limit_name(result)}")
    table.caption = "\n".join(notes)
    return table


def answer_summary_line(result: AnswerResult) -> str:
    """One line for a person at a terminal: visual tokens with TokenPacker against the
    uncompressed projector, the context used, the seconds spent (``--report``: the table)."""
    t = result.tokens
    limit = "" if t.context_limit is None else f" / {t.context_limit:,}"
    share = f" ({t.visual / t.visual_uncompressed:.0%})" if t.visual_uncompressed else ""
    pages = len(result.pages)
    read = f"{pages} page{'s' if pages != 1 else ''}"
    if result.shortlist is not None:  # a long document, ranked first
        shown = ", ".join(map(str, result.shortlist.read))
        read = f"{result.shortlist.ranked} pages ranked, {shown} read"
    parts = [
        read,
        f"{t.visual:,} visual tokens with TokenPacker, {t.visual_uncompressed:,} "
        f"uncompressed{share}",
        f"context {t.context:,}{limit}",
        f"{sum(result.timings.values()):.2f}s",
    ]
    if any(p.plan.planned_down for p in result.pages):
        parts.append(f"↓ planned down to fit {_limit_name(result)}")
    return " · ".join(parts)


def _limit_name(result: AnswerResult) -> str:
    return f"--budget {result.budget}" if result.limited_by == "budget" else "the model's context"


def timings_line(timings: dict[str, float]) -> str:
    parts = [f"{stage} {timings.get(stage, 0.0):.3f}s" for stage in STAGE_ORDER]
    return " · ".join(parts) + f" · total {sum(timings.values()):.3f}s"


def batch_summary_line(summary: BatchSummary) -> str:
    """One line: answered, failed, skipped, time, pages/s, tokens saved by the packer."""
    rate = summary.pages / summary.seconds if summary.seconds > 0 else 0.0
    saved = summary.tokens_saved
    share = saved / summary.visual_tokens_uncompressed if summary.visual_tokens_uncompressed else 0
    skipped = f", {summary.skipped} skipped (already in --out)" if summary.skipped else ""
    return (
        f"{summary.answered} answered, {summary.failed} failed{skipped} in "
        f"{summary.seconds:.1f}s ({summary.pages} pages, {rate:.2f} pages/s); TokenPacker saved "
        f"{saved:,} visual tokens ({share:.0%} of the uncompressed count)"
    )


def eval_table(summary: EvalSummary) -> Table:
    table = Table(title=Text(summary.dataset), title_justify="left")
    for column in ("questions", "answered", "failed", "ANLS", "exact match", "time"):
        table.add_column(column, justify="right")
    table.add_row(
        str(summary.questions),
        str(summary.questions - summary.failed),
        str(summary.failed),
        f"{summary.anls:.4f}",
        f"{summary.exact_match:.4f}",
        f"{summary.seconds:.1f}s",
    )
    return table


def cache_table(info: CacheInfo) -> Table:
    table = Table(show_header=False, title="visual-token cache", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_row("folder", Text(str(info.root)))
    table.add_row("entries", f"{info.entries:,}")
    table.add_row("size", f"{info.bytes / 1024**2:,.1f} MiB of {info.max_bytes / 1024**2:,.0f} MiB")
    return table


def _confidence(value: float) -> str:
    return "n/a" if value == float("-inf") else f"{value:.3f}"


def chat_turn_panel(turn: ChatTurn) -> Panel:
    """A chat answer with its page, confidence and time to first token."""
    from rich.panel import Panel

    return Panel(
        Text(turn.answer or "(no answer)"),
        title=f"page {turn.page}",
        title_align="left",
        subtitle=(
            f"confidence {_confidence(turn.confidence)} · first token "
            f"{turn.first_token_seconds * 1000:.0f} ms"
        ),
        subtitle_align="right",
    )


def chat_report(turns: Sequence[ChatTurn]) -> Table:
    """Time to first token per question: the first question about a page pays for its
    prefill, follow-ups reuse the cached prefix."""
    table = Table(title="questions so far", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("question")
    table.add_column("page", justify="right")
    table.add_column("first token", justify="right")
    table.add_column("prefix", justify="center")
    for i, turn in enumerate(turns, start=1):
        table.add_row(
            str(i),
            Text(turn.question),
            str(turn.page),
            f"{turn.first_token_seconds * 1000:.0f} ms",
            "reused" if turn.reused_prefix else "computed",
        )
    first = [t.first_token_seconds for t in turns if not t.reused_prefix]
    again = [t.first_token_seconds for t in turns if t.reused_prefix]
    if first and again:
        table.caption = (
            f"first token: {_mean_ms(first)} with the prefix computed, {_mean_ms(again)} "
            "reusing it (means)"
        )
    return table


def _mean_ms(values: Sequence[float]) -> str:
    return f"{sum(values) / len(values) * 1000:.0f} ms"
