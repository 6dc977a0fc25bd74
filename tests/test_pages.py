"""tpdoc.documents.pages: opening documents, nominal sizes, exact renders, page specs, typed errors.

Every document is made here, in ``tmp_path``, with pymupdf or Pillow.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image, ImageFile

from tpdoc.documents.pages import (
    MAX_IMAGE_PIXELS,
    PLAN_DPI,
    Document,
    Page,
    PageInfo,
    iter_pages,
    open_document,
    parse_page_spec,
)
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

MM = 72 / 25.4
A4 = (210 * MM, 297 * MM)  # exact A4 in points; pymupdf's "a4" paper is rounded to 595x842
LETTER = (612.0, 792.0)
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# ------------------------------------------------------------------------------ helpers


def make_pdf(path: Path, sizes: list[tuple[float, float]], *, rotate: int = 0) -> Path:
    """One page per (width, height) in points: a label top left, a red square bottom right."""
    doc = pymupdf.open()
    for i, (w, h) in enumerate(sizes):
        page = doc.new_page(width=w, height=h)
        page.insert_text((36, 72), f"Page {i + 1}", fontsize=12)
        page.draw_rect(pymupdf.Rect(w / 2, h / 2, w, h), color=(1, 0, 0), fill=(1, 0, 0))
        if rotate:
            page.set_rotation(rotate)
    doc.save(path)
    doc.close()
    return path


def hand_written_pdf(objects: list[bytes]) -> bytes:
    """A PDF with a correct cross-reference table around the given object bodies."""
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width x height`` RGB pixels, and no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def image_bytes(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def assert_names_file(exc: pytest.ExceptionInfo, path: Path) -> None:
    assert str(exc.value).startswith(f"{path}: "), str(exc.value)


def centre_colour(image: Image.Image) -> tuple[int, ...]:
    return image.getpixel((image.width // 2, image.height // 2))


@pytest.fixture
def pdf3(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "report.pdf", [A4, LETTER, (300.0, 200.0)])


# ---------------------------------------------------------------------- PDFs: sizes


def test_pdf_pages_and_nominal_sizes_at_plan_dpi(pdf3: Path):
    with open_document(pdf3) as doc:
        assert (doc.kind, doc.format, doc.page_count, doc.dpi) == ("pdf", "PDF", 3, PLAN_DPI)
        assert doc.info(1) == PageInfo(number=1, width=1191, height=1684)
        assert doc.info(2) == PageInfo(number=2, width=1224, height=1584)
        assert doc.info(3) == PageInfo(number=3, width=600, height=400)
        assert not doc.repaired


def test_pdf_dpi_sets_nominal_size(pdf3: Path):
    with open_document(pdf3, dpi=72) as doc:
        assert doc.dpi == 72
        assert (doc.info(2).width, doc.info(2).height) == (612, 792)
        assert doc.render(3).size == (300, 200)


def test_pdf_render_nominal_is_rgb_at_info_size(pdf3: Path):
    with open_document(pdf3) as doc:
        image = doc.render(3)
        assert image.mode == "RGB"
        assert image.size == (600, 400)
        assert image.getpixel((5, 5)) == (255, 255, 255)
        assert image.getpixel((590, 390)) == RED  # the square sits bottom right


@pytest.mark.parametrize("size", [(100, 100), (1191, 1684), (333, 2000), (1, 1), (2047, 97)])
def test_pdf_render_exact_size_in_one_pass(pdf3: Path, size, monkeypatch: pytest.MonkeyPatch):
    rendered: list[tuple[int, int]] = []
    original = pymupdf.Page.get_pixmap

    def spy(self, *args, **kwargs):
        pixmap = original(self, *args, **kwargs)
        rendered.append((pixmap.width, pixmap.height))
        return pixmap

    monkeypatch.setattr(pymupdf.Page, "get_pixmap", spy)
    with open_document(pdf3) as doc:
        image = doc.render(1, size)
    assert image.size == size
    assert rendered == [size]  # rasterised once, directly at the size: no downscaling


def test_pdf_render_stretches_to_a_different_aspect(pdf3: Path):
    with open_document(pdf3) as doc:
        image = doc.render(3, (100, 400))  # page is 3:2, image 1:4
    assert image.size == (100, 400)
    # the square covers the bottom-right quarter of the page in both directions
    assert image.getpixel((75, 300)) == RED
    assert image.getpixel((25, 300)) == (255, 255, 255)
    assert image.getpixel((75, 100)) == (255, 255, 255)


def test_pdf_rotated_page_swaps_nominal_size(tmp_path: Path):
    path = make_pdf(tmp_path / "landscape.pdf", [(300.0, 200.0)], rotate=90)
    with open_document(path, dpi=72) as doc:
        assert (doc.info(1).width, doc.info(1).height) == (200, 300)
        assert doc.render(1).size == (200, 300)
        assert doc.render(1, (50, 70)).size == (50, 70)


def test_pdf_detected_by_content_not_name(pdf3: Path, tmp_path: Path):
    renamed = tmp_path / "scan.png"
    renamed.write_bytes(pdf3.read_bytes())
    with open_document(renamed) as doc:
        assert doc.kind == "pdf"
        assert doc.page_count == 3


def test_bad_page_number_and_size(pdf3: Path):
    with open_document(pdf3) as doc:
        with pytest.raises(PageSpecError, match="page 4 does not exist") as exc:
            doc.render(4)
        assert_names_file(exc, pdf3)
        with pytest.raises(PageSpecError):
            doc.info(0)
        with pytest.raises(UsageError, match="positive integers"):
            doc.render(1, (0, 10))
        with pytest.raises(UsageError, match="positive integers"):
            doc.render(1, (10.5, 10))  # type: ignore[arg-type]
        assert doc.render(1, (np.int64(20), 30)).size == (20, 30)  # integer-like is fine


def test_close_and_context_manager(pdf3: Path):
    doc = open_document(pdf3)
    with doc:
        assert isinstance(doc, Document)
    with pytest.raises(ValueError, match="closed"):
        doc.render(1)
    doc.close()  # closing twice is harmless
    assert "closed" in repr(doc)


# ---------------------------------------------------------------------------- images


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "BMP"])
def test_image_formats_open_at_native_size(tmp_path: Path, fmt: str):
    path = tmp_path / f"page.{fmt.lower()}"
    path.write_bytes(image_bytes(Image.new("RGB", (64, 40), BLUE), fmt))
    with open_document(path) as doc:
        assert (doc.kind, doc.format, doc.page_count) == ("image", fmt, 1)
        assert doc.info(1) == PageInfo(number=1, width=64, height=40)
        image = doc.render(1)
    assert (image.mode, image.size) == ("RGB", (64, 40))
    assert np.abs(np.asarray(image, dtype=int) - BLUE).max() <= 8  # lossy formats: close


def test_image_detected_by_content_not_name(tmp_path: Path):
    path = tmp_path / "photo.jpg"  # really a PNG
    path.write_bytes(image_bytes(Image.new("RGB", (8, 8), GREEN), "PNG"))
    with open_document(path) as doc:
        assert doc.format == "PNG"


def test_image_render_resizes_bilinear_to_requested_size(tmp_path: Path):
    left_black = Image.new("RGB", (40, 20), (255, 255, 255))
    left_black.paste((0, 0, 0), (0, 0, 20, 20))
    path = tmp_path / "half.png"
    path.write_bytes(image_bytes(left_black, "PNG"))
    with open_document(path) as doc:
        image = doc.render(1, (4, 2))
        assert doc.info(1) == PageInfo(1, 40, 20)  # nominal stays native
    assert image.size == (4, 2)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((3, 0)) == (255, 255, 255)


def test_multi_frame_tiff_gives_one_page_per_frame(tmp_path: Path):
    frames = [
        Image.new("RGB", (30, 20), RED),
        Image.new("RGB", (25, 35), GREEN),
        Image.new("RGB", (10, 10), BLUE),
    ]
    path = tmp_path / "scan.tif"
    frames[0].save(path, "TIFF", save_all=True, append_images=frames[1:])
    with open_document(path) as doc:
        assert doc.page_count == 3
        assert [(doc.info(n).width, doc.info(n).height) for n in (1, 2, 3)] == [
            (30, 20),
            (25, 35),
            (10, 10),
        ]
        pages = list(iter_pages(doc))
        again = doc.render(1)  # frames can be revisited in any order
    assert [centre_colour(p.image) for p in pages] == [RED, GREEN, BLUE]
    assert [p.image.size for p in pages] == [(30, 20), (25, 35), (10, 10)]
    assert centre_colour(again) == RED


def test_image_dpi_is_read_from_file(tmp_path: Path):
    path = tmp_path / "scan.png"
    path.write_bytes(image_bytes(Image.new("RGB", (8, 8)), "PNG", dpi=(300, 300)))
    plain = tmp_path / "plain.webp"  # WebP carries no resolution
    plain.write_bytes(image_bytes(Image.new("RGB", (8, 8)), "WEBP"))
    with open_document(path, dpi=96) as doc:
        assert doc.dpi == pytest.approx(300, abs=0.1)  # dpi= only concerns PDFs
        assert doc.info(1).width == 8
    with open_document(plain) as doc:
        assert doc.dpi == 72.0


def test_transparency_is_composited_on_white(tmp_path: Path):
    path = tmp_path / "stamp.png"
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 5, 10))
    path.write_bytes(image_bytes(rgba, "PNG"))
    with open_document(path) as doc:
        image = doc.render(1)
    assert image.getpixel((1, 1)) == RED
    assert image.getpixel((8, 1)) == (255, 255, 255)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(image_bytes(Image.fromarray(values), "PNG"))
    with open_document(path) as doc:
        image = doc.render(1)
    assert [image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128,) * 3, (255,) * 3]


def test_exif_orientation_is_applied(tmp_path: Path):
    stored = Image.new("RGB", (40, 20), RED)
    stored.paste(BLUE, (0, 0, 20, 20))  # left half blue as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    path.write_bytes(image_bytes(stored, "JPEG", exif=exif, quality=95))
    with open_document(path) as doc:
        assert (doc.info(1).width, doc.info(1).height) == (20, 40)
        image = doc.render(1)
    assert image.size == (20, 40)
    top = np.asarray(image.crop((0, 0, 20, 18)), dtype=int).mean(axis=(0, 1))
    assert top[2] > 200 and top[0] < 50  # the stored left (blue) half is now on top


# ---------------------------------------------------------------------- page specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [1, 2, 3, 4, 5]),
        ("", [1, 2, 3, 4, 5]),
        ("  ", [1, 2, 3, 4, 5]),
        ("all", [1, 2, 3, 4, 5]),
        ("ALL", [1, 2, 3, 4, 5]),
        ("1,3-5", [1, 3, 4, 5]),
        (" 2 , 4 - 5 ", [2, 4, 5]),
        ("3-", [3, 4, 5]),
        ("-2", [1, 2]),
        ("5,1-2,2,5", [5, 1, 2]),
        ("4-4", [4]),
        ("1-5", [1, 2, 3, 4, 5]),
    ],
)
def test_parse_page_spec(spec, expected):
    assert parse_page_spec(spec, 5) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("1,,x", "item 2 is empty"),
        ("1,", "item 2 is empty"),
        ("x", "'x' is not a page number"),
        ("1.5", "'1.5' is not a page number"),
        ("5-3", "runs backwards"),
        ("0", "numbered from 1"),
        ("0-2", "numbered from 1"),
        ("-0", "numbered from 1"),
        ("6", "'6' is out of range"),
        ("4-9", "out of range"),
        ("7-", "out of range"),
        ("-", "needs a first or a last page"),
        ("1-2-3", "not a page number"),
        ("\u0663", "not a page number"),  # Arabic-Indic digit three
    ],
)
def test_parse_page_spec_errors_name_spec_problem_and_count(spec, problem):
    with pytest.raises(PageSpecError) as exc:
        parse_page_spec(spec, 5, "report.pdf")
    message = str(exc.value)
    assert message.startswith("report.pdf: ")
    assert repr(spec) in message
    assert problem in message
    assert "the document has 5 pages" in message
    assert exc.value.exit_code == 2


def test_parse_page_spec_without_path_and_single_page():
    with pytest.raises(PageSpecError) as exc:
        parse_page_spec("2", 1)
    assert str(exc.value) == "page spec '2': '2' is out of range (the document has 1 page)"


# --------------------------------------------------------------------- iter_pages


def test_iter_pages_yields_pages_with_nominal_info(pdf3: Path):
    seen: list[PageInfo] = []

    def size_for(info: PageInfo) -> tuple[int, int] | None:
        seen.append(info)
        return None if info.number == 1 else (info.width // 2, info.height // 2)

    with open_document(pdf3) as doc:
        pages = list(iter_pages(doc, [3, 1], size_for))
    assert [p.number for p in pages] == [3, 1]
    assert all(isinstance(p, Page) and p.path == str(pdf3) for p in pages)
    assert pages[0].nominal == PageInfo(3, 600, 400)
    assert pages[0].image.size == (300, 200)
    assert pages[1].image.size == (1191, 1684)  # None: nominal
    assert seen == [PageInfo(3, 600, 400), PageInfo(1, 1191, 1684)]


def test_iter_pages_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = make_pdf(tmp_path / "long.pdf", [(100.0, 100.0)] * 60)
    calls: list[int] = []
    original = Document.render

    def counting(self, number, size=None):
        calls.append(number)
        return original(self, number, size)

    monkeypatch.setattr(Document, "render", counting)
    with open_document(path) as doc:
        pages = iter_pages(doc)
        assert calls == []  # nothing happens before the first page is asked for
        first = next(pages)
        assert (first.number, calls) == (1, [1])
        next(pages)
        assert calls == [1, 2]


# ------------------------------------------------------------------ errors: files


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.pdf"
    with pytest.raises(DocumentNotFoundError) as exc:
        open_document(path)
    assert_names_file(exc, path)


def test_directory(tmp_path: Path):
    with pytest.raises(NotAFileError, match="directory") as exc:
        open_document(tmp_path)
    assert_names_file(exc, tmp_path)


def test_empty_file(tmp_path: Path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(CorruptDocumentError, match="file is empty") as exc:
        open_document(path)
    assert_names_file(exc, path)


@pytest.mark.parametrize("name", ["notes.txt", "notes"])
def test_text_file_is_unsupported(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_text("Invoice No. INV-2024-0153\nTotal 1,234.56\n")
    with pytest.raises(UnsupportedFormatError) as exc:
        open_document(path)
    assert_names_file(exc, path)
    assert "PDF, PNG, JPEG, TIFF, WebP, BMP" in str(exc.value)


def test_zip_is_unsupported(tmp_path: Path):
    path = tmp_path / "letter.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(UnsupportedFormatError) as exc:
        open_document(path)
    assert_names_file(exc, path)


def test_pdf_name_without_pdf_content(tmp_path: Path):
    path = tmp_path / "download.pdf"
    path.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(CorruptDocumentError, match="no %PDF header") as exc:
        open_document(path)
    assert_names_file(exc, path)


# ------------------------------------------------------------------- errors: PDFs


def test_pdf_truncated_to_half_is_refused(tmp_path: Path):
    """pymupdf 'repairs' a half file and renders the lost pages blank at Letter size;
    tpdoc refuses it instead of answering questions about blank pages."""
    full = make_pdf(tmp_path / "full.pdf", [A4] * 6).read_bytes()
    path = tmp_path / "half.pdf"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CorruptDocumentError, match="truncated PDF") as exc:
        open_document(path)
    assert_names_file(exc, path)


def test_pdf_garbage_after_header(tmp_path: Path):
    path = tmp_path / "garbage.pdf"
    path.write_bytes(b"%PDF-1.7\n" + random.Random(0).randbytes(4000))
    with pytest.raises(CorruptDocumentError, match="cannot be opened") as exc:
        open_document(path)
    assert_names_file(exc, path)


def test_pdf_repaired_but_complete_is_accepted(tmp_path: Path):
    """A wrong startxref offset makes pymupdf rebuild the xref; nothing is lost."""
    data = make_pdf(tmp_path / "ok.pdf", [A4, LETTER]).read_bytes()
    cut = data.rindex(b"startxref")
    path = tmp_path / "bad-xref.pdf"
    path.write_bytes(data[:cut] + b"startxref\n999\n%%EOF\n")
    with open_document(path) as doc:
        assert doc.repaired
        assert doc.page_count == 2
        assert doc.info(2) == PageInfo(2, 1224, 1584)
        assert doc.render(1).getpixel((1000, 1500)) == RED


def test_pdf_damage_without_pages_is_corrupt(tmp_path: Path):
    path = tmp_path / "no-pages.pdf"
    path.write_bytes(
        b"%PDF-1.4\n1 0 obj\n<< /Foo 1 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )
    with pytest.raises(CorruptDocumentError, match="no page could be recovered") as exc:
        open_document(path)
    assert_names_file(exc, path)


def test_pdf_with_zero_pages_is_empty(tmp_path: Path):
    path = tmp_path / "zero.pdf"
    path.write_bytes(
        hand_written_pdf(
            [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
        )
    )
    with pytest.raises(EmptyDocumentError, match="no pages") as exc:
        open_document(path)
    assert_names_file(exc, path)


def test_pdf_page_that_fails_to_load_names_the_page(tmp_path: Path):
    path = tmp_path / "cycle.pdf"
    path.write_bytes(
        hand_written_pdf(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",  # contains itself
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
            ]
        )
    )
    with open_document(path) as doc:
        with pytest.raises(CorruptDocumentError, match="page 1 cannot be read") as exc:
            doc.render(1)
        assert_names_file(exc, path)
        with pytest.raises(CorruptDocumentError, match="page 2"):
            doc.info(2)


def test_pdf_render_failure_names_the_page(pdf3: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(self, *args, **kwargs):
        raise pymupdf.mupdf.FzErrorFormat("syntax error in content stream")

    with open_document(pdf3) as doc:
        monkeypatch.setattr(pymupdf.Page, "get_pixmap", broken)
        with pytest.raises(CorruptDocumentError, match="page 2 cannot be rendered") as exc:
            doc.render(2)
    assert_names_file(exc, pdf3)


@pytest.fixture
def encrypted_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "secret.pdf"
    doc = pymupdf.open()
    doc.new_page(width=100, height=100).insert_text((10, 50), "secret")
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="sesame", owner_pw="owner")
    doc.close()
    return path


def test_encrypted_pdf_without_password(encrypted_pdf: Path):
    with pytest.raises(EncryptedDocumentError, match="no password given") as exc:
        open_document(encrypted_pdf)
    assert_names_file(exc, encrypted_pdf)


def test_encrypted_pdf_with_wrong_password(encrypted_pdf: Path):
    with pytest.raises(EncryptedDocumentError, match="wrong password") as exc:
        open_document(encrypted_pdf, password="open")
    assert_names_file(exc, encrypted_pdf)


def test_encrypted_pdf_with_right_password(encrypted_pdf: Path):
    with open_document(encrypted_pdf, password="sesame", dpi=72) as doc:
        assert doc.page_count == 1
        assert doc.render(1).size == (100, 100)


def test_pdf_page_over_pixel_cap_fails_at_render_not_info(pdf3: Path):
    with open_document(pdf3, max_pixels=100_000) as doc:
        assert doc.info(1).width == 1191  # planning still works
        assert doc.render(1, (300, 300)).size == (300, 300)
        with pytest.raises(ImageTooLargeError, match="1191x1684") as exc:
            doc.render(1)
        with pytest.raises(ImageTooLargeError):
            doc.render(3, (1000, 101))
    assert_names_file(exc, pdf3)


@pytest.mark.parametrize(("dpi", "max_pixels"), [(0, MAX_IMAGE_PIXELS), (-72, 10), (72, 0)])
def test_bad_options(pdf3: Path, dpi, max_pixels):
    with pytest.raises(UsageError):
        open_document(pdf3, dpi=dpi, max_pixels=max_pixels)


# ----------------------------------------------------------------- errors: images


def test_image_over_cap_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    path = tmp_path / "poster.png"
    path.write_bytes(image_bytes(Image.new("RGB", (120, 100)), "PNG"))
    with pytest.raises(ImageTooLargeError, match="120x100 = 12,000 pixels") as exc:
        open_document(path, max_pixels=10_000)
    assert_names_file(exc, path)


def test_pixel_limit_errors_advise_only_what_can_be_done(tmp_path: Path, pdf3: Path):
    """No "raise max_pixels": the command line has no such option, and above the default
    Pillow refuses an image anyway."""
    path = tmp_path / "poster.png"
    path.write_bytes(image_bytes(Image.new("RGB", (120, 100)), "PNG"))
    with pytest.raises(ImageTooLargeError) as exc:
        open_document(path, max_pixels=10_000)
    assert str(exc.value).endswith("decompression bomb); scale the image down to use it")
    with open_document(pdf3, max_pixels=100_000) as doc, pytest.raises(ImageTooLargeError) as exc:
        doc.render(1)
    assert str(exc.value).endswith("; lower the DPI (--dpi)")
    small = tmp_path / "small.png"
    small.write_bytes(image_bytes(Image.new("RGB", (10, 10)), "PNG"))
    with open_document(small, max_pixels=1_000) as doc, pytest.raises(ImageTooLargeError) as exc:
        doc.render(1, (100, 100))
    assert str(exc.value).endswith("; ask for a smaller size")  # --dpi does not size images


def test_tiff_frame_over_cap_is_refused(tmp_path: Path):
    path = tmp_path / "pages.tif"
    small, big = Image.new("RGB", (10, 10)), Image.new("RGB", (200, 100))
    small.save(path, "TIFF", save_all=True, append_images=[big])
    with pytest.raises(ImageTooLargeError, match="frame 2"):
        open_document(path, max_pixels=10_000)


def test_image_resize_over_cap_is_refused(tmp_path: Path):
    path = tmp_path / "small.png"
    path.write_bytes(image_bytes(Image.new("RGB", (10, 10)), "PNG"))
    with open_document(path, max_pixels=1_000) as doc, pytest.raises(ImageTooLargeError):
        doc.render(1, (100, 100))


def test_pillow_bomb_error_becomes_image_too_large(tmp_path: Path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))  # 4e8 pixels, over Pillow's hard limit
    with pytest.raises(ImageTooLargeError) as exc:
        open_document(path, max_pixels=10**9)  # allowed by us, refused by Pillow
    assert_names_file(exc, path)


def test_pillow_bomb_warning_does_not_leak(tmp_path: Path):
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(10_000, 10_000))  # 1e8: Pillow warns, under our cap
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_document(path) as doc:
            assert doc.info(1) == PageInfo(1, 10_000, 10_000)
        with pytest.raises(ImageTooLargeError):
            open_document(path, max_pixels=10**7)


def test_png_header_with_garbage_body(tmp_path: Path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(2000))
    with pytest.raises(CorruptDocumentError, match="damaged PNG") as exc:
        open_document(path)
    assert_names_file(exc, path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_fails_at_render_naming_page(tmp_path: Path, fmt: str):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    data = image_bytes(noise, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with open_document(path) as doc, pytest.raises(CorruptDocumentError, match="page 1") as exc:
        doc.render(1)
    assert_names_file(exc, path)


# ------------------------------------------------------------- nothing raw escapes


@pytest.mark.filterwarnings("ignore:(Corrupt EXIF|Truncated File Read):UserWarning")
@pytest.mark.parametrize("kind", ["pdf", "png", "tiff", "jpeg", "webp", "bmp"])
def test_damaged_files_raise_only_document_errors(tmp_path: Path, kind: str):
    """Random byte damage and truncation: every outcome is a page or a DocumentError."""
    if kind == "pdf":
        data = make_pdf(tmp_path / "src.pdf", [(200.0, 200.0)] * 3).read_bytes()
    else:
        noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
        data = image_bytes(Image.fromarray(noise), kind.upper())
    rng = random.Random(kind)
    for trial in range(40):
        damaged = bytearray(data)
        if trial % 2:
            damaged = damaged[: rng.randrange(16, len(damaged))]
        else:
            for _ in range(rng.randint(1, 12)):
                damaged[rng.randrange(8, len(damaged))] = rng.randrange(256)
        path = tmp_path / f"damaged-{trial}.{kind}"
        path.write_bytes(bytes(damaged))
        try:
            with open_document(path, dpi=36) as doc:
                for page in iter_pages(doc):
                    assert page.image.mode == "RGB"
        except DocumentError as exc:
            assert str(exc).startswith(f"{path}: ")
