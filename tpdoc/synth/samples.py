"""Seeded sample documents whose questions are answered by text printed on them.

In: an output folder and a seed. Out: ``report.pdf`` (a 3-page A4 business report with
headings, paragraphs, an order table and a key-value block), ``receipt.png`` (a narrow
till receipt rasterised from a vector page, then slightly rotated and noised like a
scan), ``questions.jsonl`` (one question per line with its answers exactly as printed
and the 1-based page they are on) and a ``README.md`` saying how to regenerate them.

Everything follows from the seed (each part draws from its own ``random.Random``, seeded
with the part's name and the seed): the same seed gives byte-identical files.
Only pymupdf (built-in Base-14 fonts, so nothing is embedded) and Pillow draw; nothing is
written outside the folder given. A start for a larger generator: content is built first
(``build_report``, ``build_receipt``), then drawn, so layouts and pools can grow apart.

Command line: ``python -m tpdoc.synth.samples OUT_DIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tpdoc.errors import TpdocError, UsageError
from tpdoc.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import pymupdf
    from PIL import Image

REPORT_FILE = "report.pdf"
RECEIPT_FILE = "receipt.png"
QUESTIONS_FILE = "questions.jsonl"
README_FILE = "README.md"
COMMAND = "python -m tpdoc.synth.samples"

# Page geometry in PDF points (1/72 inch).
POINTS_PER_MM = 72 / 25.4
A4_WIDTH, A4_HEIGHT = 210 * POINTS_PER_MM, 297 * POINTS_PER_MM
MARGIN = 20 * POINTS_PER_MM
RECEIPT_WIDTH = 80 * POINTS_PER_MM  # a common thermal-paper roll
RECEIPT_MARGIN = 5 * POINTS_PER_MM
RECEIPT_COLUMNS = 38  # characters per line at RECEIPT_SIZE in Courier

# Base-14 fonts by pymupdf's short names, and the sizes used (8-16 pt).
SANS, SANS_BOLD = "helv", "hebo"
SERIF, SERIF_BOLD = "tiro", "tibo"
MONO, MONO_BOLD = "cour", "cobo"
TITLE_SIZE, HEADING_SIZE, BODY_SIZE, TABLE_SIZE, SMALL_SIZE = 16.0, 12.0, 10.5, 9.0, 8.0
RECEIPT_SIZE, RECEIPT_SHOP_SIZE = 8.5, 11.0
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

# Receipt "scan": resolution, paper tone, grain, tilt, softness; kept well under 1 MB.
RECEIPT_DPI = 200
PAPER_TONE = 246  # 8-bit grey of the paper
GRAIN_LEVELS = 10  # grain darkens by 0..GRAIN_LEVELS-1 grey levels
MAX_TILT_DEGREES = 1.2
SCAN_BLUR_RADIUS = 0.6

VAT_RATES = (7, 19, 20)  # percent
PAYMENT_DAYS = (14, 30, 45)

COMPANIES = (
    "Nordwind Logistics GmbH",
    "Bluebird Office Supply Ltd.",
    "Helix Components AG",
    "Cedar & Finch Trading Co.",
    "Orbis Data Systems Inc.",
    "Lindqvist Maskin AB",
)
CUSTOMERS = (
    "Meyer Bau KG",
    "Riverside Dental Clinic",
    "Atlas Print Studio",
    "Kowalski Engineering",
    "Green Valley School",
    "Harbour Cafe Ltd.",
)
STREETS = ("Hafenstrasse", "Market Street", "Industrieweg", "King's Road", "Bahnhofplatz")
CITIES = ("20457 Hamburg", "London EC1A 1BB", "8005 Zurich", "10115 Berlin", "411 04 Goteborg")
PEOPLE = ("Anna Berger", "James Whitfield", "Sofia Marino", "Lukas Novak", "Emma Larsson")
ITEMS = (  # name, lowest and highest unit price in cents
    ("USB-C cable kit", 990, 2490),
    ("Wireless keyboard", 2900, 7900),
    ("A4 copy paper (500 sheets)", 450, 890),
    ("Laser toner cartridge", 5900, 14900),
    ("Ergonomic office chair", 18900, 42900),
    ("Monitor arm, dual", 6900, 15900),
    ("Label printer tape", 1290, 2990),
    ("Network switch, 8 port", 3490, 8990),
)
SHOPS = ("CORNER MARKET", "BAKERY SONNENSCHEIN", "CITY PHARMACY", "FRESH & GO", "KIOSK AM PARK")
GROCERIES = (  # name, lowest and highest unit price in cents
    ("Whole milk 1L", 99, 179),
    ("Sourdough bread", 249, 449),
    ("Coffee beans 500g", 699, 1299),
    ("Bananas 1kg", 119, 229),
    ("Cheddar 200g", 229, 399),
    ("Orange juice 1L", 189, 329),
    ("Dark chocolate", 129, 289),
    ("Paper towels", 199, 349),
    ("Free-range eggs x10", 279, 429),
    ("Greek yoghurt 500g", 149, 279),
    ("Spaghetti 500g", 89, 199),
    ("Tomatoes 500g", 129, 299),
    ("Olive oil 750ml", 549, 999),
    ("Sparkling water 6x1.5L", 259, 499),
)
CASHIERS = ("Mia", "Jonas", "Lea", "Tom", "Sara")
BANKNOTES_CENTS = (2000, 5000, 10000)  # cash is paid with the smallest that covers the total,
CASH_STEP_CENTS = 5000  # or else with the total rounded up to a multiple of this
PAYMENTS = ("VISA", "MASTERCARD", "CASH", "GIROCARD")


@dataclass(frozen=True)
class QA:
    """A question about ``file`` whose ``answer`` is printed verbatim on page ``page``."""

    file: str  # relative to the samples folder
    question: str
    answer: str
    page: int  # 1-based


@dataclass(frozen=True)
class LineItem:
    name: str
    quantity: int
    unit_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_cents


@dataclass(frozen=True)
class Report:
    """Everything printed on the report, before layout."""

    issuer: str
    issuer_address: tuple[str, ...]
    title: str
    invoice_no: str
    date: str
    due_date: str
    customer: str
    customer_no: str
    items: tuple[LineItem, ...]
    vat_rate: int  # percent
    growth: str  # e.g. "12.4%"
    orders: int
    contact: str
    phone: str
    email: str

    @property
    def subtotal_cents(self) -> int:
        return sum(item.amount_cents for item in self.items)

    @property
    def vat_cents(self) -> int:
        return _percent_of(self.subtotal_cents, self.vat_rate)

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.vat_cents


@dataclass(frozen=True)
class Receipt:
    """The receipt's text: ``lines`` is the record of exactly what is printed, in order."""

    shop: str
    lines: tuple[str, ...]
    qas: tuple[QA, ...]


def money(cents: int) -> str:
    """1234567 -> '12,345.67' (exact: no floating point)."""
    return f"{cents // 100:,}.{cents % 100:02d}"


def _percent_of(cents: int, percent: int) -> int:
    return (cents * percent + 50) // 100  # round half up


def _random_date(rng: random.Random) -> dt.date:
    return dt.date(rng.choice((2023, 2024)), rng.randint(1, 12), rng.randint(1, 28))


def _date_text(day: dt.date) -> str:
    return day.strftime("%d.%m.%Y")


# -------------------------------------------------------------------------------- report


def build_report(seed: int) -> Report:
    rng = random.Random(f"report:{seed}")
    issued = _random_date(rng)
    chosen = rng.sample(ITEMS, rng.randint(4, 6))
    items = tuple(
        LineItem(name, rng.randint(1, 25), rng.randint(low // 10, high // 10) * 10)
        for name, low, high in chosen
    )
    contact = rng.choice(PEOPLE)
    issuer = rng.choice(COMPANIES)
    domain = issuer.split()[0].lower().strip(",.&") + ".example"
    return Report(
        issuer=issuer,
        issuer_address=(f"{rng.choice(STREETS)} {rng.randint(1, 120)}", rng.choice(CITIES)),
        title=f"Quarterly Business Report Q{(issued.month - 1) // 3 + 1} {issued.year}",
        invoice_no=f"INV-{issued.year}-{rng.randint(1, 9999):04d}",
        date=_date_text(issued),
        due_date=_date_text(issued + dt.timedelta(days=rng.choice(PAYMENT_DAYS))),
        customer=rng.choice(CUSTOMERS),
        customer_no=f"C-{rng.randint(10000, 99999)}",
        items=items,
        vat_rate=rng.choice(VAT_RATES),
        growth=f"{rng.randint(15, 250) / 10:.1f}%",
        orders=rng.randint(12, 480),
        contact=contact,
        phone=f"+49 {rng.randint(30, 89)} {rng.randint(1000, 9999)} {rng.randint(100, 999)}",
        email=f"{contact.split()[0].lower()}@{domain}",
    )


def report_questions(report: Report, file: str = REPORT_FILE) -> list[QA]:
    first, second = report.items[0], report.items[-1]
    return [
        QA(file, "What is the invoice number?", report.invoice_no, 1),
        QA(file, "Who issued the document?", report.issuer, 1),
        QA(file, "What is the invoice date?", report.date, 1),
        QA(file, "What is the total amount due?", money(report.total_cents), 1),
        QA(file, "By how much did the order volume grow?", report.growth, 1),
        QA(file, f"How many units of '{first.name}' were ordered?", str(first.quantity), 2),
        QA(file, f"What is the unit price of '{second.name}'?", money(second.unit_cents), 2),
        QA(file, "What VAT rate is applied?", f"{report.vat_rate}%", 2),
        QA(file, "What is the payment due date?", report.due_date, 2),
        QA(file, "Who is the contact person?", report.contact, 3),
        QA(file, "What phone number can customers call?", report.phone, 3),
    ]


def _report_paragraphs(report: Report) -> dict[str, list[str]]:
    total = f"{money(report.total_cents)} EUR"
    return {
        "1. Summary": [
            f"This report summarises the business between {report.issuer} and "
            f"{report.customer} in the past quarter. A total of {report.orders} orders "
            f"were processed, and the order volume grew by {report.growth} compared with "
            "the previous quarter.",
            "Delivery times stayed within the agreed service levels. Two shipments were "
            "delayed by customs checks; both arrived within five working days.",
        ],
        "2. Invoice": [
            f"The items delivered this quarter are invoiced under {report.invoice_no}. "
            f"The amount of {total}, including VAT, is due by {report.due_date}.",
        ],
        "3. Order details": [
            "The table lists every item delivered in the period, with quantities and "
            "unit prices in EUR.",
        ],
        "4. Payment terms": [
            f"Please transfer {total} by {report.due_date}, quoting the invoice number "
            f"{report.invoice_no} and your customer number {report.customer_no}. Late "
            "payments may incur interest at the statutory rate.",
        ],
        "5. Outlook": [
            "For the next quarter we expect stable demand. Prices for paper products may "
            "rise slightly; prices for electronics are fixed until the end of the year.",
            "We thank you for your trust and look forward to continuing our cooperation.",
        ],
        "6. Contact": [
            f"For questions about this report, please contact {report.contact} by "
            f"phone at {report.phone} or by e-mail at {report.email}.",
        ],
    }


class _Writer:
    """Left-to-right, top-to-bottom text on a pymupdf page, with word wrapping."""

    def __init__(self, page: pymupdf.Page, left: float, right: float, top: float) -> None:
        self.page, self.left, self.right, self.y = page, left, right, top

    def line(
        self,
        text: str,
        font: str,
        size: float,
        *,
        x: float | None = None,
        color: tuple[float, float, float] = INK,
    ) -> None:
        self.y += size * LINE_SPACING
        self.page.insert_text(
            (self.left if x is None else x, self.y), text, fontname=font, fontsize=size, color=color
        )

    def paragraph(self, text: str, font: str = SERIF, size: float = BODY_SIZE) -> None:
        import pymupdf

        width = self.right - self.left
        words, current = text.split(), ""
        for word in words:
            candidate = f"{current} {word}".strip()
            if current and pymupdf.get_text_length(candidate, font, size) > width:
                self.line(current, font, size)
                current = word
            else:
                current = candidate
        if current:
            self.line(current, font, size)
        self.y += size * (LINE_SPACING - 1)

    def gap(self, points: float) -> None:
        self.y += points


def _right_aligned(
    page: pymupdf.Page, right: float, y: float, text: str, font: str, size: float
) -> None:
    import pymupdf

    x = right - pymupdf.get_text_length(text, font, size)
    page.insert_text((x, y), text, fontname=font, fontsize=size, color=INK)


def draw_report(report: Report) -> bytes:
    """The report as PDF bytes (deterministic: no dates or random IDs in the file)."""
    import pymupdf

    doc = pymupdf.open()
    doc.set_metadata({"title": report.title, "author": report.issuer, "producer": COMMAND})
    text = _report_paragraphs(report)
    right = A4_WIDTH - MARGIN

    # Page 1: letterhead, title, key-value block, summary.
    w = _Writer(doc.new_page(width=A4_WIDTH, height=A4_HEIGHT), MARGIN, right, MARGIN)
    w.line(report.issuer, SANS_BOLD, TITLE_SIZE)
    for address_line in report.issuer_address:
        w.line(address_line, SANS, TABLE_SIZE, color=GREY)
    w.gap(HEADING_SIZE * 2)
    w.line(report.title, SERIF_BOLD, TITLE_SIZE)
    w.line(f"Prepared for {report.customer}", SERIF, HEADING_SIZE, color=GREY)
    w.gap(HEADING_SIZE)
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
        w.line(f"{key}:", SANS_BOLD if bold else SANS, BODY_SIZE)
        w.page.insert_text(
            (value_x, w.y), value, fontname=MONO_BOLD if bold else MONO, fontsize=BODY_SIZE
        )
    w.gap(HEADING_SIZE)
    for heading in ("1. Summary", "2. Invoice"):
        w.line(heading, SANS_BOLD, HEADING_SIZE)
        for paragraph in text[heading]:
            w.paragraph(paragraph)

    # Page 2: order table, totals, payment terms.
    w = _Writer(doc.new_page(width=A4_WIDTH, height=A4_HEIGHT), MARGIN, right, MARGIN)
    w.line("3. Order details", SANS_BOLD, HEADING_SIZE)
    for paragraph in text["3. Order details"]:
        w.paragraph(paragraph)
    _draw_table(w, report)
    w.gap(HEADING_SIZE)
    w.line("4. Payment terms", SANS_BOLD, HEADING_SIZE)
    for paragraph in text["4. Payment terms"]:
        w.paragraph(paragraph)

    # Page 3: outlook, contact, signature.
    w = _Writer(doc.new_page(width=A4_WIDTH, height=A4_HEIGHT), MARGIN, right, MARGIN)
    for heading in ("5. Outlook", "6. Contact"):
        w.line(heading, SANS_BOLD, HEADING_SIZE)
        for paragraph in text[heading]:
            w.paragraph(paragraph)
    w.gap(HEADING_SIZE * 3)
    w.page.draw_line((MARGIN, w.y), (MARGIN + SIGNATURE_RULE, w.y), color=RULE_GREY)
    w.line(f"{report.contact}, on behalf of {report.issuer}", SERIF, BODY_SIZE)

    for number, page in enumerate(doc, start=1):
        footer = f"{report.issuer} - {report.invoice_no} - Page {number} of {doc.page_count}"
        page.insert_text(
            (MARGIN, A4_HEIGHT - MARGIN / 2), footer, fontname=SANS, fontsize=SMALL_SIZE, color=GREY
        )
    data = doc.tobytes(**PDF_SAVE_OPTIONS)
    doc.close()
    return data


def _draw_table(w: _Writer, report: Report) -> None:
    """Item | Qty | Unit price | Amount, then subtotal, VAT and total, right-aligned."""
    import pymupdf

    right = w.right
    qty_right, unit_right = right - QTY_COLUMN_FROM_RIGHT, right - UNIT_COLUMN_FROM_RIGHT
    row = TABLE_SIZE * TABLE_ROW_HEIGHT
    w.gap(TABLE_SIZE)
    header_top = w.y
    w.page.draw_rect(
        pymupdf.Rect(w.left, header_top, right, header_top + row), color=None, fill=HEADER_FILL
    )
    baseline = header_top + row * ROW_BASELINE
    w.page.insert_text(
        (w.left + CELL_PADDING, baseline), "Item", fontname=SANS_BOLD, fontsize=TABLE_SIZE
    )
    for label, column_right in (("Qty", qty_right), ("Unit price", unit_right), ("Amount", right)):
        _right_aligned(w.page, column_right - CELL_PADDING, baseline, label, SANS_BOLD, TABLE_SIZE)
    y = header_top + row
    for item in report.items:
        baseline = y + row * ROW_BASELINE
        w.page.insert_text(
            (w.left + CELL_PADDING, baseline), item.name, fontname=SANS, fontsize=TABLE_SIZE
        )
        cells = (
            (str(item.quantity), qty_right),
            (money(item.unit_cents), unit_right),
            (money(item.amount_cents), right),
        )
        for cell, column_right in cells:
            _right_aligned(w.page, column_right - CELL_PADDING, baseline, cell, SANS, TABLE_SIZE)
        y += row
        w.page.draw_line((w.left, y), (right, y), color=RULE_GREY, width=TABLE_RULE_WIDTH)
    totals = (
        ("Subtotal", money(report.subtotal_cents), SANS),
        (f"VAT {report.vat_rate}%", money(report.vat_cents), SANS),
        ("Total EUR", money(report.total_cents), SANS_BOLD),
    )
    for label, value, font in totals:
        baseline = y + row * ROW_BASELINE
        _right_aligned(w.page, unit_right - CELL_PADDING, baseline, label, font, TABLE_SIZE)
        _right_aligned(w.page, right - CELL_PADDING, baseline, value, font, TABLE_SIZE)
        y += row
    w.y = y


def make_report_pdf(path: str | Path, seed: int) -> list[QA]:
    """Write the seeded 3-page report to ``path`` (a ``.pdf``); return its questions."""
    target = _target(path, ".pdf")
    report = build_report(seed)
    atomic_write_bytes(target, draw_report(report))
    return report_questions(report, target.name)


# ------------------------------------------------------------------------------- receipt


def build_receipt(seed: int, file: str = RECEIPT_FILE) -> Receipt:
    rng = random.Random(f"receipt:{seed}")
    shop = rng.choice(SHOPS)
    bought = dt.datetime.combine(_random_date(rng), dt.time(rng.randint(7, 21), rng.randint(0, 59)))
    receipt_no = f"{rng.randint(1, 9):04d}-{rng.randint(1000, 9999)}"
    items = [
        LineItem(name, rng.choice((1, 1, 1, 2, 3)), rng.randint(low, high))
        for name, low, high in rng.sample(GROCERIES, rng.randint(6, 10))
    ]
    vat_rate = VAT_RATES[0]
    total = sum(item.amount_cents for item in items)
    vat_included = total - (total * 100 + (100 + vat_rate) // 2) // (100 + vat_rate)
    payment = rng.choice(PAYMENTS)
    date_text = _date_text(bought.date())

    def columns(left: str, right: str) -> str:
        return f"{left:<{RECEIPT_COLUMNS - len(right)}}{right}"

    rule = "-" * RECEIPT_COLUMNS
    lines = [
        f"{rng.choice(STREETS)} {rng.randint(1, 99)}".center(RECEIPT_COLUMNS),
        rng.choice(CITIES).center(RECEIPT_COLUMNS),
        f"Tel. +49 {rng.randint(30, 89)} {rng.randint(100000, 999999)}".center(RECEIPT_COLUMNS),
        f"VAT ID DE{rng.randint(100000000, 999999999)}".center(RECEIPT_COLUMNS),
        rule,
        columns(f"Date: {date_text}", f"Time: {bought:%H:%M}"),
        columns(f"Receipt No: {receipt_no}", f"Till {rng.randint(1, 6)}"),
        f"Cashier: {rng.choice(CASHIERS)}",
        rule,
    ]
    for item in items:
        lines.append(columns(item.name, money(item.amount_cents)))
        if item.quantity > 1:
            lines.append(f"  {item.quantity} x {money(item.unit_cents)}")
    lines += [
        rule,
        columns(f"{sum(item.quantity for item in items)} items", ""),
        columns("TOTAL EUR", money(total)),
        columns("Net", money(total - vat_included)),
        columns(f"incl. VAT {vat_rate}%", money(vat_included)),
        rule,
        columns("Paid by", payment),
    ]
    if payment == "CASH":
        rounded_up = -(-total // CASH_STEP_CENTS) * CASH_STEP_CENTS
        given = next((note for note in BANKNOTES_CENTS if note >= total), rounded_up)
        lines += [columns("Given", money(given)), columns("Change", money(given - total))]
    else:
        lines += [
            columns("Card", f"**** {rng.randint(1000, 9999)}"),
            columns("Auth. code", f"{rng.randint(0, 999999):06d}"),
        ]
    lines += [
        rule,
        "Thank you for your visit!".center(RECEIPT_COLUMNS),
        "Open Mon-Sat 7:00-20:00".center(RECEIPT_COLUMNS),
    ]
    pricey = max(items, key=lambda item: item.amount_cents)
    qas = (
        QA(file, "What is the name of the shop?", shop, 1),
        QA(file, "What is the total on the receipt?", money(total), 1),
        QA(file, "On what date was the purchase made?", date_text, 1),
        QA(file, "What is the receipt number?", receipt_no, 1),
        QA(file, f"How much was paid for '{pricey.name}'?", money(pricey.amount_cents), 1),
        QA(file, "How was the purchase paid?", payment, 1),
    )
    return Receipt(shop=shop, lines=(shop.center(RECEIPT_COLUMNS), *lines), qas=qas)


def receipt_pdf(receipt: Receipt) -> bytes:
    """The receipt as a one-page vector PDF, exactly ``receipt.lines``, one per line."""
    import pymupdf

    line_height = RECEIPT_SIZE * LINE_SPACING
    header = RECEIPT_SHOP_SIZE * LINE_SPACING
    height = 2 * RECEIPT_MARGIN + header + line_height * (len(receipt.lines) - 1)
    doc = pymupdf.open()
    page = doc.new_page(width=RECEIPT_WIDTH, height=height)
    y = RECEIPT_MARGIN + RECEIPT_SHOP_SIZE
    shop_line, *rest = receipt.lines
    # The shop's name in bold and larger, centred by width; the rest in monospace columns.
    name = shop_line.strip()
    name_width = pymupdf.get_text_length(name, MONO_BOLD, RECEIPT_SHOP_SIZE)
    page.insert_text(
        ((RECEIPT_WIDTH - name_width) / 2, y), name, fontname=MONO_BOLD, fontsize=RECEIPT_SHOP_SIZE
    )
    y += header - RECEIPT_SHOP_SIZE
    for line in rest:
        y += line_height
        page.insert_text((RECEIPT_MARGIN, y), line, fontname=MONO, fontsize=RECEIPT_SIZE)
    data = doc.tobytes(**PDF_SAVE_OPTIONS)
    doc.close()
    return data


def scan_look(page_pdf: bytes, seed: int) -> Image.Image:
    """Rasterise a one-page PDF in grey, then tilt, grain and soften it like a scan."""
    import pymupdf
    from PIL import Image, ImageChops, ImageFilter

    rng = random.Random(f"scan:{seed}")
    with pymupdf.open(stream=page_pdf, filetype="pdf") as doc:
        pixmap = doc[0].get_pixmap(dpi=RECEIPT_DPI, colorspace=pymupdf.csGRAY, alpha=False)
        image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    paper = image.point(lambda v: v * PAPER_TONE // 255)
    grain = Image.frombytes("L", paper.size, rng.randbytes(paper.width * paper.height))
    grain = grain.point(lambda v: v * GRAIN_LEVELS // 256)
    scanned = ImageChops.subtract(paper, grain)
    tilt = rng.uniform(-MAX_TILT_DEGREES, MAX_TILT_DEGREES)
    scanned = scanned.rotate(
        tilt, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=PAPER_TONE
    )
    return scanned.filter(ImageFilter.GaussianBlur(SCAN_BLUR_RADIUS))


def make_receipt_image(path: str | Path, seed: int) -> list[QA]:
    """Write the seeded receipt as a greyscale PNG to ``path`` (a ``.png``)."""
    import io

    target = _target(path, ".png")
    receipt = build_receipt(seed, target.name)
    buffer = io.BytesIO()
    scan_look(receipt_pdf(receipt), seed).save(buffer, "PNG", optimize=True, dpi=(RECEIPT_DPI,) * 2)
    atomic_write_bytes(target, buffer.getvalue())
    return list(receipt.qas)


# --------------------------------------------------------------------------- the samples


def write_samples(out_dir: str | Path, seed: int = 0) -> Path:
    """Write report.pdf, receipt.png, questions.jsonl and README.md into ``out_dir``
    (created if missing) and nowhere else; return the folder."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder; give a folder for the samples")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{folder}: cannot create the folder: {exc.strerror or exc}") from exc
    qas = make_report_pdf(folder / REPORT_FILE, seed) + make_receipt_image(
        folder / RECEIPT_FILE, seed
    )
    records: list[str] = []
    per_file: Counter[str] = Counter()
    for qa in qas:
        per_file[qa.file] += 1
        record = {
            "id": f"{Path(qa.file).stem}-{per_file[qa.file]:02d}",
            "file": qa.file,
            "question": qa.question,
            "answers": [qa.answer],
            "page": qa.page,
        }
        records.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(folder / QUESTIONS_FILE, "\n".join(records) + "\n")
    atomic_write_text(folder / README_FILE, _readme(seed, len(qas)))
    return folder


def _readme(seed: int, questions: int) -> str:
    return f"""# Sample documents

Made by `tpdoc/synth/samples.py` with seed {seed}; regenerate them from the repository root
with (byte for byte given the same pymupdf and Pillow versions):

```bash
{COMMAND} samples --seed {seed}
```

- `{REPORT_FILE}`: a 3-page A4 business report (title, letterhead, key-value block,
  paragraphs, an order table) in pymupdf's built-in Helvetica, Times and Courier.
- `{RECEIPT_FILE}`: a narrow till receipt, drawn as a PDF page, rasterised at
  {RECEIPT_DPI} dpi in grey, then slightly tilted, grained and blurred like a scan.
- `{QUESTIONS_FILE}`: {questions} questions, one JSON object per line
  (`id`, `file`, `question`, `answers`, `page`); every answer is printed verbatim on
  the 1-based `page` of `file` (checked by `tests/test_samples.py`).

All names, numbers and companies are invented.
"""


def _target(path: str | Path, suffix: str) -> Path:
    target = Path(path)
    if target.suffix.lower() != suffix:
        raise UsageError(f"{target}: expected a file name ending in {suffix}")
    if target.is_dir():
        raise UsageError(f"{target}: is a folder; give a file name ending in {suffix}")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Write seeded sample documents and questions into a folder."
    )
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        folder = write_samples(args.out_dir, args.seed)
    except TpdocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
