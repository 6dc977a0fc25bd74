"""Documents -> pages: open a PDF or an image file and render its pages one at a time.

In: a path to a PDF (optionally encrypted, with its password) or to a PNG, JPEG, TIFF
(every frame a page), WebP or BMP image; the type is detected from the file's content,
not its name. Out: a ``Document`` that knows each page's nominal size (``PageInfo``:
a PDF page at the document's DPI, ``PLAN_DPI`` unless given; an image's own pixels) and
renders any page as an RGB ``PIL.Image`` at its nominal size or at an exact requested
size. PDF pages are rasterised once, directly at the requested size (never rendered big
and scaled down). ``iter_pages`` yields ``Page``s lazily, so a 500-page PDF never sits in
memory; ``parse_page_spec`` turns ``"1,3-5"`` into page numbers.

Every failure a user can cause is a ``tpdoc.errors.DocumentError`` whose message starts
with the file's path; no raw pymupdf or Pillow exception escapes for a bad input.

Damaged PDFs: pymupdf silently repairs many broken files. A repaired PDF is accepted
when its pages load and render (``Document.repaired`` tells the caller), except a
*truncated* one: repaired and without the ``%%EOF`` marker in its last
``PDF_EOF_WINDOW`` bytes. Cut files lose their last pages, which pymupdf then renders
blank at a default size instead of failing, so they are refused as corrupt.
"""

from __future__ import annotations

import operator
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tpdoc.errors import (
    CorruptDocumentError,
    DocumentError,
    DocumentNotFoundError,
    EmptyDocumentError,
    EncryptedDocumentError,
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
# A PDF user-space unit is 1/72 inch.
PDF_POINTS_PER_INCH: float = 72.0
# Images without resolution information are reported at this DPI (informational only).
DEFAULT_IMAGE_DPI: float = 72.0
# Pixel cap per page. Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (89,478,485) and
# refuses above twice that; this is that refusal threshold.
MAX_IMAGE_PIXELS: int = 178_956_970

# A PDF header may follow up to this many bytes of junk; ``%%EOF`` must lie within this
# many bytes of the end (PDF 32000-1, 7.5.2 and 7.5.5; readers search the same windows).
PDF_HEADER_WINDOW: int = 1024
PDF_EOF_WINDOW: int = 1024
_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
PDF_EOF_MARKER = b"%%EOF"

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
# Pillow may hand a JPEG with several pictures (phones, cameras) to its MPO plugin.
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": ("PNG",),
    "JPEG": ("JPEG", "MPO"),
    "TIFF": ("TIFF",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP",),
}
MULTI_PAGE_FORMATS = frozenset({"TIFF"})
SUPPORTED_FORMATS = "PDF, PNG, JPEG, TIFF, WebP, BMP"
# The usual names of those formats, for callers that list or glob folders; opening a file
# never looks at its name except to word the error for a "*.pdf" that is not a PDF.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})

# Transparent pixels of documents are composited onto paper white.
PAPER_WHITE = (255, 255, 255)
# 16-bit (and 32-bit integer) greyscale scans are reduced to 8 bits by this right shift.
SIXTEEN_TO_EIGHT_BITS = 8
WIDE_INTEGER_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
EXIF_ORIENTATION_TAG = 0x0112
EXIF_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotated by 90 or 270 degrees

# What Pillow raises for damaged image data (UnidentifiedImageError is an OSError).
PIL_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError)

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
    """What a document backend does; ``Document`` checks numbers and sizes first."""

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
        return _open_image(Path(path), name, image_format, max_pixels)
    if _PDF_HEADER.search(head[:PDF_HEADER_WINDOW]):
        return _open_pdf(Path(path), name, password, PLAN_DPI if dpi is None else dpi, max_pixels)
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


# --------------------------------------------------------------------------------- PDF


def _pdf_errors() -> tuple[type[BaseException], ...]:
    """What pymupdf raises for damaged input: FileDataError (a RuntimeError), MuPDF's
    own ``FzError*`` classes, and ValueError (e.g. 'page not in document')."""
    import pymupdf

    return (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)


def _open_pdf(path: Path, name: str, password: str | None, dpi: float, max_pixels: int) -> Document:
    import pymupdf

    try:
        pdf = pymupdf.open(path, filetype="pdf")
    except _pdf_errors() as exc:
        raise CorruptDocumentError(
            name, "damaged PDF that cannot be opened, even repaired"
        ) from exc
    try:
        if pdf.needs_pass:
            if password is None:
                raise EncryptedDocumentError(
                    name, "encrypted PDF and no password given; pass the password with --password"
                )
            if not pdf.authenticate(password):
                raise EncryptedDocumentError(name, "wrong password for this encrypted PDF")
        if pdf.is_repaired and _lacks_eof_marker(path):
            raise CorruptDocumentError(
                name,
                f"truncated PDF: its end ({PDF_EOF_MARKER.decode()} and cross-reference data) is "
                "missing, so pages may be lost or blank; the file is probably an incomplete "
                "download or copy",
            )
        if pdf.page_count == 0:
            if pdf.is_repaired:
                raise CorruptDocumentError(name, "damaged PDF: no page could be recovered")
            raise EmptyDocumentError(name, "the PDF has no pages")
    except BaseException:
        pdf.close()
        raise
    source = _PdfSource(pdf, name, dpi)
    return Document(
        path, kind="pdf", format="PDF", dpi=dpi, source=source, max_pixels=max_pixels,
        repaired=bool(pdf.is_repaired),
    )  # fmt: skip


def _lacks_eof_marker(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - PDF_EOF_WINDOW))
        return PDF_EOF_MARKER not in handle.read()


def rasterise_pdf_page(page: Any, size: tuple[int, int]) -> Image.Image:
    """A pymupdf page as an RGB image of exactly ``size`` (width, height), in one render
    with x and y scaled independently (also what training data is rendered with)."""
    import pymupdf
    from PIL import Image

    width, height = size
    matrix = pymupdf.Matrix(width / page.rect.width, height / page.rect.height)
    pixmap = page.get_pixmap(matrix=matrix, colorspace=pymupdf.csRGB, alpha=False)
    image = Image.frombytes("RGB", (pixmap.width, pixmap.height), pixmap.samples)
    if image.size != (width, height):  # MuPDF rounds the page box; never seen off by > 1 px
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return image


class _PdfSource:
    def __init__(self, pdf: Any, name: str, dpi: float) -> None:
        self._pdf = pdf  # pymupdf.Document
        self._name = name
        self._dpi = dpi
        self.page_count: int = pdf.page_count

    def _page(self, number: int) -> Any:
        """pymupdf.Page ``number`` with a usable page box, or CorruptDocumentError."""
        try:
            page = self._pdf.load_page(number - 1)
            rect = page.rect
        except _pdf_errors() as exc:
            raise CorruptDocumentError(self._name, f"page {number} cannot be read ({exc})") from exc
        if not (rect.width > 0 and rect.height > 0):
            raise CorruptDocumentError(self._name, f"page {number} has an empty page box ({rect})")
        return page

    def size(self, number: int) -> tuple[int, int]:
        rect = self._page(number).rect
        scale = self._dpi / PDF_POINTS_PER_INCH
        return max(1, round(rect.width * scale)), max(1, round(rect.height * scale))

    def render(self, number: int, size: tuple[int, int]) -> Image.Image:
        page = self._page(number)
        try:
            return rasterise_pdf_page(page, size)
        except _pdf_errors() as exc:
            raise CorruptDocumentError(
                self._name, f"page {number} cannot be rendered ({exc})"
            ) from exc

    def close(self) -> None:
        self._pdf.close()


# ------------------------------------------------------------------------------- images


def _open_image(path: Path, name: str, image_format: str, max_pixels: int) -> Document:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DocumentError(name, f"cannot read: {exc.strerror or exc}") from exc
    try:
        source = _ImageSource(handle, name, image_format)
        for number in range(1, source.page_count + 1):
            width, height = source.size(number)
            if width * height > max_pixels:
                where = f"frame {number}: " if source.page_count > 1 else ""
                raise ImageTooLargeError(
                    name,
                    f"{where}{width}x{height} = {width * height:,} pixels exceeds the limit "
                    f"of {max_pixels:,} (a possible decompression bomb); scale the image "
                    "down to use it",
                )
    except BaseException:
        handle.close()
        raise
    return Document(
        path, kind="image", format=image_format, dpi=source.dpi, source=source,
        max_pixels=max_pixels,
    )  # fmt: skip


class _ImageSource:
    """An image file kept open; each render decodes one frame afresh and keeps nothing."""

    def __init__(self, handle: Any, name: str, image_format: str) -> None:
        self._handle = handle
        self._name = name
        self._format = image_format
        first = self._open()
        with self._pillow("the frame list"):
            frames = getattr(first, "n_frames", 1) if image_format in MULTI_PAGE_FORMATS else 1
        self.page_count: int = frames
        self.dpi: float = _image_dpi(first.info)
        self._sizes: list[tuple[int, int]] = []
        for number in range(1, frames + 1):
            frame = self._frame(first, number)
            width, height = frame.size
            if self._orientation(frame) in EXIF_TRANSPOSED_ORIENTATIONS:
                width, height = height, width
            self._sizes.append((width, height))

    @contextmanager
    def _pillow(self, what: str) -> Iterator[None]:
        """Pillow's errors as typed errors about ``what``; its bomb warning silenced, as
        ``max_pixels`` replaces it (its hard limit, twice the warning's, still applies)."""
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(
                self._name, f"{what}: Pillow refuses it as a possible decompression bomb ({exc})"
            ) from exc
        except PIL_DECODE_ERRORS as exc:
            raise CorruptDocumentError(
                self._name, f"{what}: damaged {self._format} data ({exc})"
            ) from exc

    def _open(self) -> Image.Image:
        """Parse the header only; no pixel is decoded."""
        from PIL import Image

        self._handle.seek(0)
        with self._pillow(f"{self._format} header"):
            return Image.open(self._handle, formats=PILLOW_FORMATS[self._format])

    def _frame(self, image: Image.Image, number: int) -> Image.Image:
        if self.page_count > 1:
            with self._pillow(f"page {number} (frame {number})"):
                image.seek(number - 1)
        return image

    def _orientation(self, frame: Image.Image) -> int:
        if self._format == "PNG" and "exif" not in frame.info:
            return 1  # an eXIf chunk after the pixels: Pillow would decode them to find it
        try:
            return int(frame.getexif().get(EXIF_ORIENTATION_TAG, 1))
        except PIL_DECODE_ERRORS + (TypeError,):
            return 1  # unreadable EXIF: keep the pixels as stored

    def size(self, number: int) -> tuple[int, int]:
        return self._sizes[number - 1]

    def render(self, number: int, size: tuple[int, int]) -> Image.Image:
        from PIL import Image, ImageOps

        frame = self._frame(self._open(), number)
        upright = self._orientation(frame) == 1  # read as for the nominal size
        with self._pillow(f"page {number}"):
            frame.load()
            image = _to_rgb(frame if upright else ImageOps.exif_transpose(frame))
        # ``frame`` (the decoded pixels) is dropped on return. Not ``frame.close()``: that
        # would close the shared file handle too.
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        return image

    def close(self) -> None:
        self._handle.close()


def _image_dpi(info: dict[str, Any]) -> float:
    """The file's horizontal resolution, or ``DEFAULT_IMAGE_DPI`` if absent or unusable."""
    try:
        dpi = float(info.get("dpi", (DEFAULT_IMAGE_DPI,))[0])
    except (TypeError, ValueError, IndexError):
        return DEFAULT_IMAGE_DPI
    return dpi if dpi > 0 else DEFAULT_IMAGE_DPI  # also rejects NaN


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded mode -> "RGB": transparency onto white, 16-bit greyscale to 8 bits."""
    from PIL import Image

    if image.mode in WIDE_INTEGER_MODES:
        import numpy as np

        wide = np.asarray(image).astype(np.int64)
        eight = (np.clip(wide, 0, np.iinfo(np.uint16).max) >> SIXTEEN_TO_EIGHT_BITS).astype(
            np.uint8
        )
        return Image.fromarray(eight).convert("RGB")  # uint8 [H, W] -> "L" -> "RGB"
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        paper = Image.new("RGB", rgba.size, PAPER_WHITE)
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    return image.convert("RGB")
