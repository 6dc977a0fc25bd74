"""What can be checked about a request before any weights load.

In: a model's ``ModelConfig`` (or a model spec: its ``config.json`` is enough) and the
``AskOptions`` of a request. Out: the geometry the request asks for (``--max-tiles``,
``--scale`` applied), the packer scales the model works at, and for a document the
number of pages selected, or a typed error (``UsageError``, ``BudgetError``,
``DocumentError``) before minutes go into loading a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tpdoc.answering.planning import plan_within
from tpdoc.errors import UsageError

if TYPE_CHECKING:
    from tpdoc.answering.results import AskOptions
    from tpdoc.model.config import Geometry, ModelConfig
    from tpdoc.model.document_model import DocumentModel


def model_scales(config: ModelConfig) -> tuple[int, ...]:
    """Packer scales a model was trained for (today: its projector's only)."""
    return (config.projector.scale,)


def asked_geometry(config: ModelConfig, options: AskOptions, name: str) -> Geometry:
    """The model's geometry with ``--max-tiles`` and ``--scale`` applied; a scale the
    model (called ``name`` in the message) was not trained for, or more tiles than its
    loaded cap, is a ``UsageError``."""
    scales = model_scales(config)
    if options.scale is not None and options.scale not in scales:
        raise UsageError(
            f"--scale {options.scale}: model {name} works at scale "
            f"{', '.join(map(str, scales))} only"
        )
    if options.max_tiles is not None and options.max_tiles > config.max_tiles:
        # The cap is the loaded model's: a tpdoc model's own, or the one a published
        # checkpoint was loaded with (DocumentQA(..., max_tiles=N) raises it there).
        raise UsageError(
            f"--max-tiles {options.max_tiles}: model {name} is loaded to take at most "
            f"{config.max_tiles} tiles; ask with --max-tiles {config.max_tiles} or fewer"
        )
    return config.geometry.with_options(max_tiles=options.max_tiles, scale=options.scale)


def check_document(
    path: str | Path, options: AskOptions, model: DocumentModel | str | Path | None = None
) -> int:
    """Check what can be checked before loading a model's weights (fail fast): that
    ``path`` opens and the page spec selects pages of it; with ``--scale``,
    ``--max-tiles`` or ``--budget``, that the model (as ``DocumentQA`` takes it; its
    ``config.json`` is enough) works at that scale and tile cap and that every selected
    page fits the budget at least as one tile. The number of selected pages.

    The context limit is checked when the question is asked: it needs the tokenizer.
    """
    from tpdoc.documents.pages import open_document, parse_page_spec

    with open_document(path, password=options.password, dpi=options.dpi) as doc:
        numbers = parse_page_spec(options.pages, doc.page_count, path)
        if options.scale is None and options.budget is None and options.max_tiles is None:
            return len(numbers)
        config, name = config_of(model, options.max_tiles)
        geometry = asked_geometry(config, options, name)
        if options.budget is not None:
            for number in numbers:
                info = doc.info(number)
                plan_within(
                    number, info.height, info.width, geometry, limit=options.budget,
                    scales=model_scales(config), what=f"--budget {options.budget}",
                )  # fmt: skip
    return len(numbers)


def config_of(
    model: DocumentModel | str | Path | None, max_tiles: int | None = None
) -> tuple[ModelConfig, str]:
    """A model's configuration and its name in messages, without loading weights; a spec
    is read as ``DocumentQA`` would load it with ``max_tiles``."""
    if model is None or isinstance(model, str | Path):
        from tpdoc.weights.registry import DEFAULT_MODEL, load_config

        name = str(model) if model is not None else DEFAULT_MODEL
        return load_config(model, max_tiles=max_tiles), name
    return model.config, model.config.name
