"""The samples' layouts: the training generator's ``Pen`` in one fixed style.

In: a ``Report`` or a ``Receipt`` (``sample_content``). Out: PDF bytes, drawn with the same
``Pen`` and ``FontFace``s as the training documents but with nothing left to chance:
pymupdf's built-in Helvetica, Times and Courier (nothing embedded), 20 mm margins, fixed
sizes (8-16 pt), and saved without dates or random IDs, so the same content gives the
same bytes. ``RECEIPT_SCAN`` is the look ``render.scan`` gives the receipt's raster.
"""

from __future__ import annotations

from typing import Any

from tpdoc.synth.fonts import FontFace
from tpdoc.synth.pen import Pen, SynthDoc
from tpdoc.synth.render import ScanLook
from tpdoc.synth.sample_content import COMMAND, Receipt, Report, money, report_paragraphs

# Page geometry in PDF points (1/72 inch).
POINTS_PER_MM = 72 / 25.4
A4_WIDTH, A4_HEIGHT = 210 * POINTS_PER_MM, 297 * POINTS_PER_MM
MARGIN = 20 * POINTS_PER_MM
RECEIPT_WIDTH = 80 * POINTS_PER_MM  # a common thermal-paper roll
RECEIPT_MARGIN = 5 * POINTS_PER_MM

# Base-14 faces (pymupdf's short names) and the sizes used (8-16 pt).
SANS, SANS_BOLD = FontFace("Helvetica", "helv"), FontFace("Helvetica", "hebo")
SERIF, SERIF_BOLD = FontFace("Times", "tiro"), FontFace("Times", "tibo")
MONO, MONO_BOLD = FontFace("Courier", "cour"), FontFace("Courier", "cobo")
TITLE_SIZE, HEADING_SIZE, BODY_SIZE, TABLE_SIZE, SMALL_SIZE = 16.0, 12.0, 10.5, 9.0, 8.0
RECEIPT_SIZE, RECEIPT_SHOP_SIZE = 8.5, 11.0  # RECEIPT_COLUMNS of Courier fit the paper
LINE_SPACING = 1.35  # baseline distance as a multiple of the font size
KEY_VALUE_INDENT = 32 * POINTS_PER_MM  # where values start in the key-value block
SIGNATURE_RULE = 60 * POINTS_PER_MM
# Order table: right edges of the Qty and Unit price columns, measured from the right
# margin (Amount ends at the margin); row height in font sizes; baseline within a row.
QTY_COLUMN_FROM_RIGHT, UNIT_COLUMN_FROM_RIGHT = 75 * POINTS_PER_MM, 38 * POINTS_PER_MM
TABLE_ROW_HEIGHT = LINE_SPACING * 1.4
ROW_BASELINE = 0.7
CELL_PADDING = 2.0
TABLE_RULE_WIDTH = 0.5
PDF_SAVE_OPTIONS = {"garbage": 3, "deflate": True, "no_new_id": True}  # small, reproducible
INK, GREY, RULE_GREY, HEADER_FILL = (0, 0, 0), (0.35, 0.35, 0.35), (0.6, 0.6, 0.6), (0.9, 0.9, 0.9)
# The receipt "scan", kept well under 1 MB.
RECEIPT_SCAN = ScanLook(dpi=200, paper_tone=246, grain_levels=10, max_tilt_degrees=1.2,
                        blur_radius=0.6)  # fmt: skip


def _pen(doc: Any, kind: str, size: tuple[float, float], faces: tuple[FontFace, FontFace],
         margin: float, body: float) -> Pen:  # fmt: skip
    return Pen(SynthDoc(kind, doc), size, faces, margin=margin, ink=INK, body=body,
               line_gap=LINE_SPACING)  # fmt: skip


def _section(pen: Pen, heading: str, paragraphs: list[str]) -> None:
    pen.line(heading, HEADING_SIZE, face=SANS_BOLD)
    for paragraph in paragraphs:
        pen.paragraph(paragraph)  # in Times, the pen's regular face
        pen.gap(BODY_SIZE * (LINE_SPACING - 1))


def draw_report(report: Report) -> bytes:
    """The report as PDF bytes (deterministic: no dates or random IDs in the file)."""
    import pymupdf

    doc = pymupdf.open()
    doc.set_metadata({"title": report.title, "author": report.issuer, "producer": COMMAND})
    text = report_paragraphs(report)

    # Page 1: letterhead, title, key-value block, summary.
    pen = _pen(doc, "report", (A4_WIDTH, A4_HEIGHT), (SERIF, SERIF_BOLD), MARGIN, BODY_SIZE)
    pen.line(report.issuer, TITLE_SIZE, face=SANS_BOLD)
    for address_line in report.issuer_address:
        pen.line(address_line, TABLE_SIZE, face=SANS, color=GREY)
    pen.gap(HEADING_SIZE * 2)
    pen.line(report.title, TITLE_SIZE, bold=True)
    pen.line(f"Prepared for {report.customer}", HEADING_SIZE, color=GREY)
    pen.gap(HEADING_SIZE)
    key_values = (
        ("Invoice No.", report.invoice_no),
        ("Date", report.date),
        ("Customer No.", report.customer_no),
        ("Due date", report.due_date),
        ("Total (EUR)", money(report.total_cents)),
    )
    value_x = MARGIN + KEY_VALUE_INDENT
    for key, value in key_values:
        bold = key.startswith("Total")
        pen.line(f"{key}:", BODY_SIZE, face=SANS_BOLD if bold else SANS)
        pen.text(value_x, pen.y, value, BODY_SIZE, face=MONO_BOLD if bold else MONO)
    pen.gap(HEADING_SIZE)
    for heading in ("1. Summary", "2. Invoice"):
        _section(pen, heading, text[heading])

    # Page 2: order table, totals, payment terms.
    pen.new_page()
    _section(pen, "3. Order details", text["3. Order details"])
    _draw_table(pen, report)
    pen.gap(HEADING_SIZE)
    _section(pen, "4. Payment terms", text["4. Payment terms"])

    # Page 3: outlook, contact, signature.
    pen.new_page()
    for heading in ("5. Outlook", "6. Contact"):
        _section(pen, heading, text[heading])
    pen.gap(HEADING_SIZE * 3)
    pen.page.draw_line((MARGIN, pen.y), (MARGIN + SIGNATURE_RULE, pen.y), color=RULE_GREY)
    pen.line(f"{report.contact}, on behalf of {report.issuer}", BODY_SIZE)

    for number in range(1, doc.page_count + 1):
        footer = f"{report.issuer} - {report.invoice_no} - Page {number} of {doc.page_count}"
        pen.turn_to(number)
        pen.text(MARGIN, A4_HEIGHT - MARGIN / 2, footer, SMALL_SIZE, face=SANS, color=GREY)
    data = doc.tobytes(**PDF_SAVE_OPTIONS)
    doc.close()
    return data


def _draw_table(pen: Pen, report: Report) -> None:
    """Item | Qty | Unit price | Amount, then subtotal, VAT and total, right-aligned."""
    import pymupdf

    left, right = pen.margin, pen.size[0] - pen.margin
    qty_right, unit_right = right - QTY_COLUMN_FROM_RIGHT, right - UNIT_COLUMN_FROM_RIGHT
    row = TABLE_SIZE * TABLE_ROW_HEIGHT

    def cells(baseline: float, first: str, *rest: tuple[str, float], face: FontFace) -> None:
        """``first`` left in the Item column, then each (text, column right edge)."""
        if first:
            pen.text(left + CELL_PADDING, baseline, first, TABLE_SIZE, face=face)
        for text, column_right in rest:
            pen.text(column_right - CELL_PADDING, baseline, text, TABLE_SIZE, align="right",
                     face=face)  # fmt: skip

    pen.gap(TABLE_SIZE)
    header_top = pen.y
    pen.page.draw_rect(
        pymupdf.Rect(left, header_top, right, header_top + row), color=None, fill=HEADER_FILL
    )
    heads = (("Qty", qty_right), ("Unit price", unit_right), ("Amount", right))
    cells(header_top + row * ROW_BASELINE, "Item", *heads, face=SANS_BOLD)
    y = header_top + row
    for item in report.items:
        amounts = (
            (str(item.quantity), qty_right),
            (money(item.unit_cents), unit_right),
            (money(item.amount_cents), right),
        )
        cells(y + row * ROW_BASELINE, item.name, *amounts, face=SANS)
        y += row
        pen.page.draw_line((left, y), (right, y), color=RULE_GREY, width=TABLE_RULE_WIDTH)
    totals = (
        ("Subtotal", money(report.subtotal_cents), SANS),
        (f"VAT {report.vat_rate}%", money(report.vat_cents), SANS),
        ("Total EUR", money(report.total_cents), SANS_BOLD),
    )
    for label, value, face in totals:
        cells(y + row * ROW_BASELINE, "", (label, unit_right), (value, right), face=face)
        y += row
    pen.y = y


def receipt_pdf(receipt: Receipt) -> bytes:
    """The receipt as a one-page vector PDF, exactly ``receipt.lines``, one per line: the
    shop's name in bold and larger, centred; the rest in monospace columns."""
    import pymupdf

    line_height = RECEIPT_SIZE * LINE_SPACING
    header = RECEIPT_SHOP_SIZE * LINE_SPACING
    height = 2 * RECEIPT_MARGIN + header + line_height * (len(receipt.lines) - 1)
    doc = pymupdf.open()
    faces = (MONO, MONO_BOLD)
    pen = _pen(doc, "receipt", (RECEIPT_WIDTH, height), faces, RECEIPT_MARGIN, RECEIPT_SIZE)
    shop_line, *rest = receipt.lines
    pen.gap(RECEIPT_SHOP_SIZE)
    pen.text(RECEIPT_WIDTH / 2, pen.y, shop_line.strip(), RECEIPT_SHOP_SIZE, bold=True,
             align="center")  # fmt: skip
    pen.gap(header - RECEIPT_SHOP_SIZE)
    for line in rest:  # the page is cut to hold exactly these lines: no page-full check
        pen.gap(line_height)
        pen.text(pen.margin, pen.y, line, RECEIPT_SIZE)
    data = doc.tobytes(**PDF_SAVE_OPTIONS)
    doc.close()
    return data
