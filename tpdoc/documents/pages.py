"""Documents -> pages: open a PDF or an image file and render its pages one at a time.

In: a path to a PDF (optionally encrypted, with its password) or to a PNG, JPEG, TIFF
(every frame a page), WebP or BMP image; the type is detected from the file's content,
not its name. Out: a ``Document`` that knows each page's nominal size (``PageInfo``:
a PDF page at the document's DPI, ``PLAN_DPI`` unless given; an image's own pixels) and
renders any page as an RGB ``PIL.Image`` at its nominal size or at an exact requested
size. PDF pages are rasterised once, directly at the requested size (never rendered big
and scaled down). ``iter_pages`` yields ``Page``s lazily, so a 500-page PDF never sits in
memory; ``parse_page_spec`` turns ``"1,3-5"`` into page numbers.

This module sniffs the format, checks page numbers, sizes and the pixel cap, and wraps
a page source: ``tpdoc.documents.pdf`` reads PDFs (and refuses truncated ones;
``Document.repaired`` says pymupdf had to repair the file), ``tpdoc.documents.images``
reads image files. Every failure a user can cause is a ``tpdoc.errors.DocumentError``
whose message starts with the file's path; no raw pymupdf or Pillow exception escapes
for a bad input.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tpdoc.documents.images import open_image_source
from tpdoc.documents.pdf import open_pdf_source
from tpdoc.errors import (
    CorruptDocumentError,
    DocumentError,
    DocumentNotFoundError,
    ImageTooLargeError,
    NotAFileError,
    PageSpecError,
    UnsupportedFormatError,
    UsageError,
)

if TYPE_CHECKING:
    from PIL import Image

# The grid is chosen for a PDF page as it would be rasterised at this resolution.
PLAN_DPI: float = 144.0
# Pixel cap per page. Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89,478,485) and
# refuses above twice that; this is that refusal threshold.
MAX_IMAGE_PIXELS: int = 178_956_970

# A PDF header may follow up to this many bytes of junk (PDF 32000-1, 7.5.2; readers
# search the same window).
PDF_HEADER_WINDOW: int = 1024
_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")

# Magic bytes -> Pillow format name. Only these image formats are read; a file whose
# content starts with one of them is an image of that format, whatever its name.
IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
WEBP_RIFF, WEBP_FORM, WEBP_FORM_OFFSET = b"RIFF", b"WEBP", 8
SNIFF_BYTES = max(PDF_HEADER_WINDOW, WEBP_FORM_OFFSET + len(WEBP_FORM))
SUPPORTED_FORMATS = "PDF, PNG, JPEG, TIFF, WebP, BMP"
# The usual names of those formats, for callers that list or glob folders; opening a file
# never looks at its name except to word the error for a "*.pdf" that is not a PDF.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})

PAGE_SPEC_ALL = "all"
_SPEC_SINGLE = re.compile(r"[0-9]+", re.ASCII)
_SPEC_RANGE = re.compile(r"([0-9]*)\s*-\s*([0-9]*)", re.ASCII)


@dataclass(frozen=True)
class PageInfo:
    """A page's number and nominal pixel size (what a tiler chooses its grid for)."""

    number: int  # 1-based
    width: int  # PDF: page width at the document's DPI, rounded; image: native width
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class Page:
    """One rendered page."""

    path: str  # the document's path as given
    number: int  # 1-based
    image: Image.Image  # mode "RGB"
    nominal: PageInfo  # the page's nominal size, whatever size ``image`` was rendered at


class _Source(Protocol):
    """What a document backend (``pdf``, ``images``) does; ``Document`` checks numbers and
    sizes first."""

    page_count: int

    def size(self, number: int) -> tuple[int, int]: ...

    def render(self, number: int, size: tuple[int, int]) -> Image.Image: ...

    def close(self) -> None: ...


class Document:
    """An open PDF or image file. Use as a context manager, or call ``close()``.

    Holds the open file and at most the one page being rendered; each ``render`` returns
    a new image that the document does not keep.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        kind: str,
        format: str,
        dpi: float,
        source: _Source,
        max_pixels: int,
        repaired: bool = False,
    ) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)  # the path as given, for messages
        self.kind = kind  # "pdf" or "image"
        self.format = format  # "PDF", "PNG", "JPEG", "TIFF", "WEBP" or "BMP"
        self.dpi = dpi
        self.page_count = source.page_count
        self.max_pixels = max_pixels
        self.repaired = repaired  # pymupdf had to repair the PDF's structure
        self._source: _Source | None = source

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._source is None else _plural(self.page_count, "page")
        return f"Document({self.name!r}, kind={self.kind!r}, {state})"

    def info(self, number: int) -> PageInfo:
        """Nominal size of page ``number`` (1-based), without rendering it."""
        width, height = self._open_source(number).size(number)
        return PageInfo(number=number, width=width, height=height)

    def render(self, number: int, size: tuple[int, int] | None = None) -> Image.Image:
        """RGB image of page ``number`` (1-based).

        ``size=(width, height)``: PDFs are rasterised directly at exactly that size (one
        render, x and y scaled independently); images are resized to it (bilinear) if it
        differs from their native size. ``None``: the nominal size. Raises
        ``ImageTooLargeError`` if the size exceeds ``max_pixels`` and
        ``CorruptDocumentError`` (naming the page) if rendering or decoding fails.
        """
        source = self._open_source(number)
        target = source.size(number) if size is None else self._check_size(number, size)
        self._check_pixels(number, target)
        return source.render(number, target)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def _open_source(self, number: int) -> _Source:
        if self._source is None:
            raise ValueError(f"{self.name}: document is closed")
        if isinstance(number, bool) or operator.index(number) != number:
            raise TypeError(f"page number must be an int, got {number!r}")
        if not 1 <= number <= self.page_count:
            raise PageSpecError(
                self.name, f"page {number} does not exist ({_pages(self.page_count)})"
            )
        return self._source

    def _check_size(self, number: int, size: tuple[int, int]) -> tuple[int, int]:
        try:
            width, height = (operator.index(side) for side in size)
        except (TypeError, ValueError):
            width = height = 0
        if min(width, height) < 1:
            raise UsageError(
                f"{self.name}: page {number}: render size must be two positive integers "
                f"(width, height), got {size!r}"
            )
        return width, height

    def _check_pixels(self, number: int, size: tuple[int, int]) -> None:
        width, height = size
        if width * height > self.max_pixels:
            fix = "lower the DPI (--dpi)" if self.kind == "pdf" else "ask for a smaller size"
            raise ImageTooLargeError(
                self.name,
                f"page {number}: {width}x{height} = {width * height:,} pixels exceeds the "
                f"limit of {self.max_pixels:,}; {fix}",
            )


def open_document(
    path: str | Path,
    *,
    password: str | None = None,
    dpi: float | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Document:
    """Open a PDF or image document; the type comes from the file's content.

    ``dpi`` sets the nominal resolution of PDF pages (default ``PLAN_DPI``); it does not
    change images. ``password`` opens encrypted PDFs. Images with more than
    ``max_pixels`` pixels (in any frame) are refused from their header, before any pixel
    is decoded.
    """
    name = os.fspath(path)
    if dpi is not None and not dpi > 0:
        raise UsageError(f"{name}: DPI must be positive, got {dpi}")
    if max_pixels < 1:
        raise UsageError(f"{name}: max_pixels must be positive, got {max_pixels}")
    head = _read_head(Path(path), name)
    image_format = _sniff_image(head)
    if image_format is not None:
        image = open_image_source(Path(path), name, image_format, max_pixels)
        return Document(
            Path(path), kind="image", format=image_format, dpi=image.dpi, source=image,
            max_pixels=max_pixels,
        )  # fmt: skip
    if _PDF_HEADER.search(head[:PDF_HEADER_WINDOW]):
        pdf_dpi = PLAN_DPI if dpi is None else dpi
        pdf = open_pdf_source(Path(path), name, password, pdf_dpi)
        return Document(
            Path(path), kind="pdf", format="PDF", dpi=pdf_dpi, source=pdf, max_pixels=max_pixels,
            repaired=pdf.repaired,
        )  # fmt: skip
    if Path(path).suffix.lower() == ".pdf":
        raise CorruptDocumentError(name, "not a PDF (no %PDF header)")
    raise UnsupportedFormatError(
        name, f"not a PDF or an image format tpdoc reads (supported: {SUPPORTED_FORMATS})"
    )


def parse_page_spec(spec: str | None, page_count: int, path: str | Path | None = None) -> list[int]:
    """``'1,3-5'`` -> ``[1, 3, 4, 5]`` (1-based).

    ``None``, ``''`` or ``'all'`` select every page; ``'3-'`` runs to the last page and
    ``'-2'`` from the first; whitespace is ignored; repeats are dropped, keeping the first
    order. A malformed item (``'1,,x'``, ``'5-3'``, ``'0'``) or a page the document does
    not have raises ``PageSpecError`` naming the spec, the problem and the page count.
    """
    if spec is None or spec.strip() == "" or spec.strip().lower() == PAGE_SPEC_ALL:
        return list(range(1, page_count + 1))

    def fail(problem: str) -> PageSpecError:
        return PageSpecError(path, f"page spec {spec!r}: {problem} ({_pages(page_count)})")

    numbers: dict[int, None] = {}  # insertion-ordered set
    for position, raw in enumerate(spec.split(","), start=1):
        item = raw.strip()
        if not item:
            raise fail(f"item {position} is empty")
        if _SPEC_SINGLE.fullmatch(item):
            first = last = int(item)
        elif match := _SPEC_RANGE.fullmatch(item):
            start, end = match.groups()
            if not start and not end:
                raise fail(f"range {item!r} needs a first or a last page")
            first = int(start) if start else 1
            last = int(end) if end else page_count
            if start and end and first > last:
                raise fail(f"range {item!r} runs backwards")
        else:
            raise fail(f"{item!r} is not a page number or a range like 3-5")
        if min(first, last) < 1:
            raise fail(f"{item!r}: pages are numbered from 1")
        if max(first, last) > page_count:
            raise fail(f"{item!r} is out of range")
        numbers.update(dict.fromkeys(range(first, last + 1)))
    return list(numbers)


def iter_pages(
    doc: Document,
    numbers: Iterable[int] | None = None,
    size_for: Callable[[PageInfo], tuple[int, int] | None] | None = None,
) -> Iterator[Page]:
    """Yield pages one at a time: for each number, ``info`` -> ``size_for(info)`` (``None``
    means the nominal size) -> ``render``. Nothing is rendered before it is asked for."""
    selected = range(1, doc.page_count + 1) if numbers is None else numbers
    for number in selected:
        info = doc.info(number)
        size = size_for(info) if size_for is not None else None
        yield Page(path=doc.name, number=number, image=doc.render(number, size), nominal=info)


# ----------------------------------------------------------------------------- helpers


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pages(count: int) -> str:
    return f"the document has {_plural(count, 'page')}"


def check_readable(path: str | Path) -> None:
    """Fail as ``open_document`` does (the same ``DocumentError``s and messages) for a file
    that is missing, not a regular file, empty or unreadable; no PDF library is needed."""
    _read_head(Path(path), os.fspath(path))


def _read_head(path: Path, name: str) -> bytes:
    """The first ``SNIFF_BYTES`` of a regular, non-empty file; typed errors otherwise."""
    try:
        if not path.exists():
            raise DocumentNotFoundError(name, "no such file")
        if path.is_dir():
            raise NotAFileError(name, "is a directory, not a file")
        if not path.is_file():
            raise NotAFileError(name, "is not a regular file")
        if path.stat().st_size == 0:
            raise CorruptDocumentError(name, "file is empty")
        with path.open("rb") as handle:
            return handle.read(SNIFF_BYTES)
    except PermissionError as exc:
        raise DocumentError(name, "permission denied") from exc
    except OSError as exc:
        raise DocumentError(name, f"cannot read: {exc.strerror or exc}") from exc


def _sniff_image(head: bytes) -> str | None:
    for magic, image_format in IMAGE_SIGNATURES:
        if head.startswith(magic):
            return image_format
    form = head[WEBP_FORM_OFFSET : WEBP_FORM_OFFSET + len(WEBP_FORM)]
    if head.startswith(WEBP_RIFF) and form == WEBP_FORM:
        return "WEBP"
    return None
