"""Image pages: open a PNG, JPEG, TIFF, WebP or BMP file with Pillow and decode its frames.

In: an open-able path already sniffed as one of those formats (``image_format``, a key of
``PILLOW_FORMATS``) and a pixel cap. Out: a page source for
``tpdoc.documents.pages.Document`` (``page_count``, ``size``, ``render``, ``close``, plus
``dpi``): every TIFF frame is a page, other formats have one; sizes are the image's own
pixels, upright after its EXIF orientation; renders are RGB, transparency composited onto
paper white and 16-bit greyscale reduced to 8 bits.

Sizes come from the headers, so an image over the cap is refused before any pixel is
decoded; each render decodes one frame afresh and keeps nothing. Every failure a user can
cause is a ``tpdoc.errors.DocumentError`` whose message starts with the file's path; no
raw Pillow exception escapes for a bad input. Pillow and numpy are imported inside the
functions that use them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpdoc.errors import CorruptDocumentError, DocumentError, ImageTooLargeError

if TYPE_CHECKING:
    from PIL import Image

# Images without resolution information are reported at this DPI (informational only).
DEFAULT_IMAGE_DPI: float = 72.0
# Sniffed format -> the Pillow formats that may read it. Pillow may hand a JPEG with
# several pictures (phones, cameras) to its MPO plugin.
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": ("PNG",),
    "JPEG": ("JPEG", "MPO"),
    "TIFF": ("TIFF",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP",),
}
MULTI_PAGE_FORMATS = frozenset({"TIFF"})

# Transparent pixels of documents are composited onto paper white.
PAPER_WHITE = (255, 255, 255)
# 16-bit (and 32-bit integer) greyscale scans are reduced to 8 bits by this right shift.
SIXTEEN_TO_EIGHT_BITS = 8
WIDE_INTEGER_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
EXIF_ORIENTATION_TAG = 0x0112
EXIF_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotated by 90 or 270 degrees

# What Pillow raises for damaged image data (UnidentifiedImageError is an OSError).
PIL_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError)


def open_image_source(path: Path, name: str, image_format: str, max_pixels: int) -> _ImageSource:
    """The image file at ``path`` (``name``: the path as given, for messages), kept open;
    ``ImageTooLargeError`` if any frame has more than ``max_pixels`` pixels."""
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
    return source


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
