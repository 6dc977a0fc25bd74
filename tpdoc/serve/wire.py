"""An ``AnswerResult`` as JSON and back, every field kept, for clients that render it.

In: an ``AnswerResult`` (or its JSON). Out: a JSON-safe dict holding all of it, every
page's plan included (``to_json``, the ``ask --json`` record, leaves plans out), and the
``AnswerResult`` rebuilt from that dict, equal to the original; ``tpdoc ask --server``
renders the rebuilt result with the same code as a local answer.

JSON has no infinities: a confidence of ``-inf`` (an answer without tokens) travels as
``null``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tpdoc.answering.planning import PagePlan
from tpdoc.answering.results import AnswerResult, PageAnswer, Shortlist, TokenUse
from tpdoc.documents.tiling import TilePlan


def result_to_wire(result: AnswerResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["confidence"] = _finite(result.confidence)
    for page in data["pages"]:
        page["confidence"] = _finite(page["confidence"])
    return data


def result_from_wire(data: dict[str, Any]) -> AnswerResult:
    """The ``AnswerResult`` of ``result_to_wire``'s dict; ``ValueError`` if it is not one
    (say, from a server of another tpdoc version)."""
    try:
        return AnswerResult(
            **{
                **data,
                "confidence": _confidence(data["confidence"]),
                "pages": tuple(_page(p) for p in data["pages"]),
                "tokens": TokenUse(**data["tokens"]),
                "shortlist": _shortlist(data.get("shortlist")),
            }
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a tpdoc answer: {exc}") from None


def _page(data: dict[str, Any]) -> PageAnswer:
    plan = data["plan"]
    tiles = plan["plan"]
    tile_plan = TilePlan(
        **{**tiles, "fit": tuple(tiles["fit"]), "boxes": tuple(map(tuple, tiles["boxes"]))}
    )
    return PageAnswer(
        **{
            **data,
            "confidence": _confidence(data["confidence"]),
            "plan": PagePlan(**{**plan, "plan": tile_plan}),
            "box": None if data.get("box") is None else tuple(data["box"]),
        }
    )


def _shortlist(data: dict[str, Any] | None) -> Shortlist | None:
    return None if data is None else Shortlist(**{**data, "read": tuple(data["read"])})


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _confidence(value: float | None) -> float:
    return -math.inf if value is None else float(value)
