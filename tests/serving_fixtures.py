"""The fixtures of the `tpdoc serve` tests, for ``pytest_plugins = ["tests.serving_fixtures"]``
(each module that names it gets its own servers): ``real``, the tiny random model served
with a visual-token cache; ``scripted``, a scripted model whose answers name the question
and the document, served with batches of up to 16; ``gate``, which holds the scripted
model inside a question; ``docs``, four small documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import make_pdf
from tests.serving import MAX_BODY, Gate, Served, running, scripted_qa
from tpdoc.answering.cache import VisualTokenCache
from tpdoc.answering.qa import DocumentQA


@pytest.fixture(scope="module")
def real(tiny_model_dir, tmp_path_factory) -> Iterator[Served]:
    """The tiny random model, with a visual-token cache, as `tpdoc serve --model DIR`."""
    cache = VisualTokenCache(tmp_path_factory.mktemp("serve-cache"), max_bytes=10**8)
    with running(DocumentQA(str(tiny_model_dir), cache=cache), max_body=MAX_BODY) as served:
        yield served


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate()


@pytest.fixture(scope="module")
def scripted(scripted_model, gate) -> Iterator[tuple[Served, list[int]]]:
    qa, sizes = scripted_qa(scripted_model, gate)
    with running(qa, max_body=MAX_BODY, max_batch=16) as served:
        yield served, sizes


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> list[Path]:
    """Four one-page documents of different shapes: two PDFs, a PNG and a JPEG."""
    d = tmp_path_factory.mktemp("serve-docs")
    paths = [make_pdf(d / "a.pdf", [(300.0, 300.0)]), make_pdf(d / "b.pdf", [(200.0, 400.0)])]
    for name, size in (("c.png", (500, 120)), ("d.jpg", (90, 260))):
        Image.new("RGB", size, (250, 240, 230)).save(d / name)
        paths.append(d / name)
    return paths
