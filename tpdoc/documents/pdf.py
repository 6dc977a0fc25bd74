"""PDF pages: open a PDF with pymupdf and rasterise its pages at exact pixel sizes.

In: the path of a file already sniffed as a PDF, its optional password and the DPI of
its nominal page sizes. Out: a page source for ``tpdoc.documents.pages.Document``
(``page_count``, ``size``, ``render``, ``close``, plus ``repaired``), and
``rasterise_pdf_page``, the one function that turns a pymupdf page into an RGB image,
shared by answering, training and benchmarks.

Every failure a user can cause is a ``tpdoc.errors.DocumentError`` whose message starts
with the file's path; no raw pymupdf exception escapes for a bad input. pymupdf is
imported inside the functions that use it.

Damaged PDFs: pymupdf silently repairs many broken files. A repaired PDF is accepted
when its pages load and render (the source's ``repaired`` tells the caller), except a
*truncated* one: repaired and without the ``%%EOF`` marker in its last
``PDF_EOF_WINDOW`` bytes. Cut files lose their last pages, which pymupdf then renders
blank at a default size instead of failing, so they are refused as corrupt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.errors import CorruptDocumentError, EmptyDocumentError, EncryptedDocumentError

if TYPE_CHECKING:
    from PIL import Image

# A PDF user-space unit is 1/72 inch.
PDF_POINTS_PER_INCH: float = 72.0
# ``%%EOF`` must lie within this many bytes of the end (PDF 32000-1, 7.5.5; readers
# search the same window).
PDF_EOF_WINDOW: int = 1024
PDF_EOF_MARKER = b"%%EOF"


def _pdf_errors() -> tuple[type[BaseException], ...]:
    """What pymupdf raises for damaged input: FileDataError (a RuntimeError), MuPDF's
    own ``FzError*`` classes, and ValueError (e.g. 'page not in document')."""
    import pymupdf

    return (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)


def open_pdf_source(path: Path, name: str, password: str | None, dpi: float) -> _PdfSource:
    """The open PDF at ``path`` (``name``: the path as given, for messages), its pages
    sized at ``dpi``; typed errors for damaged, truncated, encrypted or empty files."""
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
    return _PdfSource(pdf, name, dpi)


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
        self.repaired = bool(pdf.is_repaired)  # pymupdf had to repair the PDF's structure

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
