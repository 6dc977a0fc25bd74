"""tpdoc: OCR-free question answering over high-resolution documents.

The package is laid out as the pipeline runs:

- ``tpdoc.documents``: documents -> pages -> tiles (open, render, plan, cut views);
- ``tpdoc.model``: vision tower -> TokenPacker projector -> language model, assembled in
  ``tpdoc.model.document_model``;
- ``tpdoc.weights``: model names, folders, the Hub and the published checkpoints ->
  a loaded model;
- ``tpdoc.answering``: planning, the QA engine, caches, results, batch, chat and eval;
- ``tpdoc.cli`` and ``tpdoc.serve``: the command line and the HTTP server over it;
- ``tpdoc.synth`` and ``tpdoc.train``: synthetic documents and the training stages.

The names a Python user needs are importable from here::

    import tpdoc
    qa = tpdoc.DocumentQA(tpdoc.load_document_model("tpdoc-tiny"))
    print(qa.ask("invoice.pdf", "What is the total?").answer)

They are imported on first use, so ``import tpdoc`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "DocumentQA": "tpdoc.answering.qa",
    "ask": "tpdoc.answering.qa",
    "AskOptions": "tpdoc.answering.results",
    "AnswerResult": "tpdoc.answering.results",
    "inspect_document": "tpdoc.answering.budget",
    "load_document_model": "tpdoc.weights.loading",
    "DocumentModel": "tpdoc.model.document_model",
    "ModelConfig": "tpdoc.model.config",
    "open_document": "tpdoc.documents.pages",
    "TpdocError": "tpdoc.errors",
}
__all__ = [
    "AnswerResult",
    "AskOptions",
    "DocumentModel",
    "DocumentQA",
    "ModelConfig",
    "TpdocError",
    "__version__",
    "ask",
    "inspect_document",
    "load_document_model",
    "open_document",
]

if TYPE_CHECKING:
    from tpdoc.answering.budget import inspect_document
    from tpdoc.answering.qa import DocumentQA, ask
    from tpdoc.answering.results import AnswerResult, AskOptions
    from tpdoc.documents.pages import open_document
    from tpdoc.errors import TpdocError
    from tpdoc.model.config import ModelConfig
    from tpdoc.model.document_model import DocumentModel
    from tpdoc.weights.loading import load_document_model


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tpdoc' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
