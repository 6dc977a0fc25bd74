"""Synthetic business documents drawn with pymupdf, with a record of what they say.

In: a ``random.Random``, a document kind and a font split. Out: ``SynthDoc``: a pymupdf
document (vector pages) and its facts: every field printed (key, label, value, page),
the item table, the title and the issuer. Kinds: invoice, receipt, purchase order, form,
table, letter and report; several layouts each (labels left of or above values, right-
aligned amounts, shaded rows, boxes, logos, coloured bands, small print beside large
headings, bank details and phone numbers as distractors).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tpdoc.synth import values as V
from tpdoc.synth.fonts import FontFace, faces_for

KINDS = ("invoice", "receipt", "purchase_order", "form", "table", "letter", "report")
A4 = (595.28, 841.89)
LETTER = (612.0, 792.0)
RECEIPT_WIDTH = 226.8  # 80 mm
MARGIN_RANGE = (36.0, 64.0)
BODY_SIZES = (8.0, 9.0, 10.0, 11.0, 12.0)
SMALL_SIZES = (7.0, 7.5, 8.0, 8.5)
HEADING_SIZES = (13.0, 14.0, 16.0, 18.0, 20.0)
LINE_GAP = 1.45  # baseline distance in font sizes
INK = ((0, 0, 0), (0.1, 0.1, 0.15), (0.15, 0.15, 0.3), (0.2, 0.05, 0.05))
BANDS = ((0.12, 0.3, 0.55), (0.55, 0.1, 0.1), (0.1, 0.45, 0.3), (0.3, 0.3, 0.3), (0.4, 0.2, 0.5))
SHADE = (0.92, 0.93, 0.95)
HELD_OUT_FIELD_STYLES = ("boxed",)  # key-value layouts only held-out documents use


@dataclass
class Fact:
    key: str  # e.g. "total", "invoice_number", "item_price:Cable kit"
    value: str  # exactly as printed
    page: int  # 1-based
    label: str = ""


@dataclass
class SynthDoc:
    kind: str
    doc: Any  # pymupdf.Document
    facts: list[Fact] = field(default_factory=list)
    lang: str = "en"
    split: str = "train"  # "eval" documents may use layouts training never sees

    def fact(self, key: str) -> Fact | None:
        return next((f for f in self.facts if f.key == key), None)


class Pen:
    """Writes text on the current page, tracking the cursor and the page number."""

    def __init__(self, synth: SynthDoc, rng: random.Random, size: tuple[float, float], faces):
        self.s, self.rng, self.size = synth, rng, size
        self.margin = rng.uniform(*MARGIN_RANGE)
        self.regular, self.bold = faces
        self.ink = rng.choice(INK)
        self.body = rng.choice(BODY_SIZES)
        self.page: Any = None
        self.page_no = 0
        self._names: dict[FontFace, str] = {}
        self.new_page()

    @property
    def width(self) -> float:
        return self.size[0] - 2 * self.margin

    def new_page(self) -> None:
        self.page = self.s.doc.new_page(width=self.size[0], height=self.size[1])
        self.page_no += 1
        self._names = {}
        self.y = self.margin

    def ensure(self, height: float) -> None:
        if self.y + height > self.size[1] - self.margin:
            self.new_page()

    def face(self, bold: bool = False) -> FontFace:
        return self.bold if bold else self.regular

    def _name(self, face: FontFace) -> str:
        if face not in self._names:
            self._names[face] = face.insert(self.page)
        return self._names[face]

    def text(self, x: float, y: float, text: str, size: float, bold: bool = False,
             align: str = "left", color=None) -> float:  # fmt: skip
        """Draw at baseline ``y``; ``x`` is the left, right or centre edge. Returns width."""
        face = self.face(bold)
        width = face.text_length(text, size)
        if align == "right":
            x -= width
        elif align == "center":
            x -= width / 2
        self.page.insert_text(
            (x, y), text, fontname=self._name(face), fontsize=size, color=color or self.ink
        )
        return width

    def line(self, text: str, size: float | None = None, bold: bool = False, x: float | None = None,
             align: str = "left") -> None:  # fmt: skip
        size = size or self.body
        self.ensure(size * LINE_GAP)
        self.y += size * LINE_GAP
        left = self.margin if x is None else x
        if align == "right":
            left = self.size[0] - self.margin
        elif align == "center":
            left = self.size[0] / 2
        self.text(left, self.y, text, size, bold, align)

    def gap(self, points: float) -> None:
        self.y += points

    def record(self, key: str, value: str, label: str = "") -> None:
        self.s.facts.append(Fact(key, value, self.page_no, label))


def choose_faces(rng: random.Random, split: str, text_sample: str) -> tuple[FontFace, FontFace]:
    """A regular and a bold face of one family that can print ``text_sample``."""
    faces = faces_for(split)
    for _ in range(20):
        family = rng.choice(sorted({f.family for f in faces}))
        members = [f for f in faces if f.family == family]
        upright = [f for f in members if not _is_bold(f) and not _is_italic(f)]
        regular = min(upright or members, key=lambda f: len(f.code))
        bold = next((f for f in members if _is_bold(f)), regular)
        if regular.has_glyphs(text_sample) and bold.has_glyphs(text_sample):
            return regular, bold
    base = [f for f in faces_for("train") if f.code in ("helv", "hebo")]
    return base[0], base[-1]


def _is_bold(face: FontFace) -> bool:
    code = face.code.lower()
    return ("bold" in code or code.endswith(("bo", "b")) or "-b" in code) and not _is_italic(face)


def _is_italic(face: FontFace) -> bool:
    code = face.code.lower()
    return any(k in code for k in ("italic", "oblique", "it", "bi")) or code in ("coit", "heit")


def make_document(rng: random.Random, kind: str | None = None, split: str = "train") -> SynthDoc:
    """One random document of ``kind`` (random kind if None) in ``split``'s fonts."""
    import pymupdf

    kind = kind or rng.choice(KINDS)
    lang = rng.choice(V.LANGUAGES)
    synth = SynthDoc(kind=kind, doc=pymupdf.open(), lang=lang, split=split)
    money = V.money_style(rng)
    sample = "".join(V.TITLES["invoice"].values()) + money.currency + "ÄÖÜäöüßéèçñº°"
    faces = choose_faces(rng, split, sample)
    if not faces[0].has_glyphs(money.currency):
        money = V.MoneyStyle("EUR", money.before, money.decimal_comma, True)
    if kind == "receipt":
        height = rng.uniform(520, 900)
        pen = Pen(synth, rng, (RECEIPT_WIDTH, height), faces)
        pen.margin = rng.uniform(10, 16)
        pen.y = pen.margin
        pen.body = rng.choice((7.5, 8.0, 8.5, 9.0))
        draw_receipt(pen, rng, lang, money)
    else:
        pen = Pen(synth, rng, rng.choice((A4, A4, LETTER)), faces)
        DRAWERS[kind](pen, rng, lang, money)
    return synth


# ------------------------------------------------------------------ shared blocks


def header(pen: Pen, rng: random.Random, issuer: str, lang: str) -> None:
    """Logo, issuer name and address; sometimes on a coloured band."""
    import pymupdf

    band = rng.random() < 0.35
    top = pen.y
    if band:
        color = rng.choice(BANDS)
        rect = pymupdf.Rect(0, 0, pen.size[0], pen.margin + 46)
        pen.page.draw_rect(rect, color=None, fill=color)
        pen.ink_saved, pen.ink = pen.ink, (1, 1, 1)
    if rng.random() < 0.6:  # a logo: a coloured shape with initials
        initials = "".join(w[0] for w in issuer.split()[:2]).upper()
        r = pymupdf.Rect(pen.margin, top, pen.margin + 34, top + 34)
        shape_color = rng.choice(BANDS)
        if rng.random() < 0.5:
            pen.page.draw_oval(r, color=None, fill=shape_color)
        else:
            pen.page.draw_rect(r, color=None, fill=shape_color)
        pen.text(r.x0 + 17, r.y0 + 22, initials, 13, bold=True, align="center", color=(1, 1, 1))
        x = pen.margin + 44
    else:
        x = pen.margin
    size = rng.choice(HEADING_SIZES)
    pen.text(x, top + size, issuer, size, bold=True)
    pen.record("issuer", issuer)
    small = rng.choice(SMALL_SIZES)
    addr = ", ".join(V.address(rng))
    pen.text(x, top + size + small * 1.6, addr, small)
    if band:
        pen.ink = pen.ink_saved
    pen.y = max(top + 50, top + size + small * 2.5) + (12 if band else 0)


def key_values(pen: Pen, rng: random.Random, items: list[tuple[str, str, str]], lang: str) -> None:
    """Fields as 'Label: value' rows, labels left of values or above them, or right-aligned;
    held-out documents also draw them as boxed form cells (a layout never trained on)."""
    styles = ("left", "left", "above", "right")
    if pen.s.split == "eval":
        styles += HELD_OUT_FIELD_STYLES
    style = rng.choice(styles)
    if style == "boxed":
        boxed_fields(pen, items)
        return
    size = pen.body
    label_w = max(pen.face(True).text_length(label + ":", size) for _, label, _ in items)
    value_w = max(pen.face().text_length(value, size) for _, _, value in items)
    gap = rng.uniform(8, 30)
    x0 = pen.margin
    if style == "right":  # the block's right edge on the margin, never past it
        x0 = max(pen.margin, pen.size[0] - pen.margin - label_w - gap - value_w)
    for key, label, value in items:
        colon = rng.choice((":", ":", ""))
        if style == "above":
            pen.ensure(size * LINE_GAP * 2.2)
            pen.y += size * LINE_GAP
            pen.text(x0, pen.y, label, size * 0.85, bold=True)
            pen.y += size * LINE_GAP
            pen.text(x0, pen.y, value, size)
        else:
            pen.ensure(size * LINE_GAP)
            pen.y += size * LINE_GAP
            pen.text(x0, pen.y, label + colon, size, bold=True)
            pen.text(x0 + label_w + gap, pen.y, value, size)
        pen.record(key, value, label)


def boxed_fields(pen: Pen, items: list[tuple[str, str, str]]) -> None:
    """Form cells: a thin box per field, its label small at the top, the value under it;
    two cells a row."""
    import pymupdf

    size = pen.body
    cell_w, cell_h = pen.width / 2 - 6, size * 3.1
    for i, (key, label, value) in enumerate(items):
        col = i % 2
        if col == 0:
            pen.ensure(cell_h + 6)
            top = pen.y + 6
            pen.y = top + cell_h
        x = pen.margin + col * (cell_w + 12)
        pen.page.draw_rect(pymupdf.Rect(x, top, x + cell_w, top + cell_h), color=(0.45,) * 3,
                           width=0.6)  # fmt: skip
        pen.text(x + 4, top + size * 1.0, label, size * 0.72)
        pen.text(x + 4, top + size * 2.4, value, size, bold=True)
        pen.record(key, value, label)


def item_table(pen: Pen, rng: random.Random, money: V.MoneyStyle, lang: str) -> float:
    """An item table with headers; returns the net total."""
    import pymupdf

    n = rng.randint(2, 7)
    items = rng.sample(V.ITEMS, n)
    heads = {
        "en": ("Description", "Qty", "Unit price", "Amount"),
        "de": ("Beschreibung", "Menge", "Einzelpreis", "Betrag"),
        "fr": ("Désignation", "Qté", "Prix unitaire", "Montant"),
        "nl": ("Omschrijving", "Aantal", "Prijs", "Bedrag"),
        "es": ("Descripción", "Cant.", "Precio unitario", "Importe"),
    }[lang]
    size = max(7.5, pen.body - rng.choice((0, 0.5, 1)))
    row_h = size * 1.9
    width = pen.width
    cols = (pen.margin, pen.margin + width * 0.55, pen.margin + width * 0.75, pen.margin + width)
    shaded = rng.random() < 0.5
    boxed = rng.random() < 0.4
    pen.gap(size)
    pen.ensure(row_h * 2)
    top = pen.y
    pen.page.draw_rect(pymupdf.Rect(cols[0], top, cols[3], top + row_h), color=None, fill=SHADE)
    base = top + row_h * 0.68
    pen.text(cols[0] + 3, base, heads[0], size, bold=True)
    pen.text(cols[1] + 20, base, heads[1], size, bold=True, align="right")
    pen.text(cols[2] + 40, base, heads[2], size, bold=True, align="right")
    pen.text(cols[3] - 3, base, heads[3], size, bold=True, align="right")
    pen.y = top + row_h
    net = 0.0
    for i, item in enumerate(items):
        pen.ensure(row_h)
        qty = rng.randint(1, 12)
        price = round(rng.uniform(2, 900) * (1 if rng.random() < 0.8 else 10), 2)
        amount = round(qty * price, 2)
        net += amount
        if shaded and i % 2:
            pen.page.draw_rect(
                pymupdf.Rect(cols[0], pen.y, cols[3], pen.y + row_h), color=None, fill=SHADE
            )
        base = pen.y + row_h * 0.68
        pen.text(cols[0] + 3, base, item, size)
        pen.text(cols[1] + 20, base, str(qty), size, align="right")
        price_text = money.format(price, with_currency=rng.random() < 0.3)
        amount_text = money.format(amount, with_currency=rng.random() < 0.3)
        pen.text(cols[2] + 40, base, price_text, size, align="right")
        pen.text(cols[3] - 3, base, amount_text, size, align="right")
        if boxed:
            pen.page.draw_line((cols[0], pen.y + row_h), (cols[3], pen.y + row_h), color=(0.6,) * 3)
        pen.record(f"item_price:{item}", price_text)
        pen.record(f"item_amount:{item}", amount_text)
        pen.record(f"item_qty:{item}", str(qty))
        pen.y += row_h
    return round(net, 2)


def totals(pen: Pen, rng: random.Random, money: V.MoneyStyle, net: float, lang: str) -> None:
    rate = rng.choice((0.0, 5.0, 7.0, 10.0, 19.0, 20.0, 21.0))
    tax = round(net * rate / 100, 2)
    size = pen.body
    right = pen.size[0] - pen.margin
    label_x = right - rng.uniform(150, 210)
    rows = [
        ("subtotal", money.format(net)),
        ("tax", money.format(tax)),
        ("total", money.format(net + tax)),
    ]
    if rng.random() < 0.3:
        rows = rows[2:]
    pen.gap(size * 0.6)
    for key, value in rows:
        bold = key == "total"
        s = size + (rng.choice((0, 1, 2)) if bold else 0)
        pen.ensure(s * LINE_GAP)
        pen.y += s * LINE_GAP
        label = V.label(rng, key, lang)
        if key == "tax" and rate:
            label = f"{label} {rate:g}%"
        pen.text(label_x, pen.y, label + ":", s, bold=bold)
        pen.text(right, pen.y, value, s, bold=bold, align="right")
        pen.record(key, value, label)


def footer(pen: Pen, rng: random.Random, lang: str) -> None:
    """Small print with distractors: bank details and phone."""
    small = rng.choice(SMALL_SIZES)
    bank = V.iban(rng)
    tel = V.phone(rng)
    y = pen.size[1] - pen.margin + small
    if pen.y > y - 3 * small:
        pen.new_page()
    pen.text(pen.margin, y - small * 1.4, f"{V.label(rng, 'iban', lang)}: {bank}", small)
    pen.text(pen.margin, y, f"{V.label(rng, 'phone', lang)}: {tel}", small)
    pen.record("iban", bank)
    pen.record("phone", tel)


SENTENCES = (
    "Thank you for your order and the pleasant cooperation.",
    "Please transfer the amount within the payment terms stated above.",
    "All prices include packaging unless stated otherwise.",
    "Goods remain our property until full payment has been received.",
    "Questions about this document can be sent to our accounts team.",
    "Deliveries are made from our central warehouse on working days.",
    "The figures below summarise the activity of the last quarter.",
    "We look forward to continuing our work together next year.",
)


def paragraph(pen: Pen, rng: random.Random, sentences: int) -> None:
    words = " ".join(rng.choice(SENTENCES) for _ in range(sentences)).split()
    size = pen.body
    line = ""
    for word in words:
        trial = f"{line} {word}".strip()
        if pen.face().text_length(trial, size) > pen.width:
            pen.line(line, size)
            line = word
        else:
            line = trial
    if line:
        pen.line(line, size)


# ------------------------------------------------------------------ the kinds


def draw_invoice(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle,
                 kind: str = "invoice") -> None:  # fmt: skip
    issuer = V.company(rng)
    header(pen, rng, issuer, lang)
    title = V.TITLES[kind][lang]
    pen.line(title, rng.choice(HEADING_SIZES), bold=True, align=rng.choice(("left", "right")))
    pen.record("title", title)
    pen.gap(6)
    number_key = "invoice_number" if kind == "invoice" else "order_number"
    fields = [
        (
            number_key,
            V.label(rng, number_key, lang),
            V.doc_number(rng, "INV" if kind == "invoice" else "PO"),
        ),
        ("date", V.label(rng, "date", lang), V.date(rng)),
    ]
    if rng.random() < 0.6:
        fields.append(("due_date", V.label(rng, "due_date", lang), V.date(rng)))
    if rng.random() < 0.6:
        fields.append(("customer_id", V.label(rng, "customer_id", lang), V.doc_number(rng, "C")))
    rng.shuffle(fields)
    key_values(pen, rng, fields, lang)
    pen.gap(8)
    customer = V.company(rng) if rng.random() < 0.7 else V.person(rng)
    for text in (customer, *V.address(rng)):
        pen.line(text)
    pen.record("customer", customer)
    net = item_table(pen, rng, money, lang)
    totals(pen, rng, money, net, lang)
    if rng.random() < 0.5:
        pen.gap(10)
        paragraph(pen, rng, 2)
    footer(pen, rng, lang)


def draw_purchase_order(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle) -> None:
    draw_invoice(pen, rng, lang, money, kind="purchase_order")


def draw_receipt(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle) -> None:
    issuer = V.company(rng)
    pen.line(issuer, pen.body + 2, bold=True, align="center")
    pen.record("issuer", issuer)
    for text in V.address(rng):
        pen.line(text, pen.body)
    title = V.TITLES["receipt"][lang]
    pen.line(title, pen.body + 1, bold=True)
    pen.record("title", title)
    when = V.date(rng)
    pen.line(f"{V.label(rng, 'date', lang)}: {when}")
    pen.record("date", when)
    number = V.doc_number(rng, "R")
    pen.line(f"No. {number}")
    pen.record("receipt_number", number)
    right = pen.size[0] - pen.margin
    net = 0.0
    for item in rng.sample(V.ITEMS, rng.randint(2, 8)):
        price = round(rng.uniform(0.5, 60), 2)
        net += price
        pen.ensure(pen.body * LINE_GAP)
        pen.y += pen.body * LINE_GAP
        pen.text(pen.margin, pen.y, item, pen.body)
        text = money.format(price, with_currency=False)
        pen.text(right, pen.y, text, pen.body, align="right")
        pen.record(f"item_price:{item}", text)
    totals(pen, rng, money, round(net, 2), lang)
    pen.line(V.phone(rng), pen.body - 0.5)


def draw_form(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle) -> None:
    import pymupdf

    issuer = V.company(rng)
    header(pen, rng, issuer, lang)
    title = rng.choice(("Customer Registration", "Service Request", "Account Details"))
    pen.line(title, rng.choice(HEADING_SIZES), bold=True)
    pen.record("title", title)
    fields = [
        ("customer", "Name", V.person(rng)),
        ("customer_id", V.label(rng, "customer_id", lang), V.doc_number(rng, "C")),
        ("date", V.label(rng, "date", lang), V.date(rng)),
        ("phone", V.label(rng, "phone", lang), V.phone(rng)),
        ("city", "City", rng.choice(V.CITIES)),
    ]
    rng.shuffle(fields)
    boxed = rng.random() < 0.5
    for key, label, value in fields:
        pen.gap(8)
        top = pen.y
        key_values(pen, rng, [(key, label, value)], lang)
        if boxed:
            pen.page.draw_rect(
                pymupdf.Rect(pen.margin - 4, top + 2, pen.size[0] - pen.margin, pen.y + 6),
                color=(0.5, 0.5, 0.5), width=0.6,
            )  # fmt: skip
    footer(pen, rng, lang)


def draw_table(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle) -> None:
    issuer = V.company(rng)
    header(pen, rng, issuer, lang)
    title = rng.choice(("Price List", "Order Summary", "Stock Report", "Quotation"))
    pen.line(title, rng.choice(HEADING_SIZES), bold=True)
    pen.record("title", title)
    net = item_table(pen, rng, money, lang)
    if rng.random() < 0.5:
        totals(pen, rng, money, net, lang)
    paragraph(pen, rng, rng.randint(1, 3))


def draw_letter(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle) -> None:
    issuer = V.company(rng)
    header(pen, rng, issuer, lang)
    recipient = V.person(rng)
    for text in (recipient, *V.address(rng)):
        pen.line(text)
    pen.record("customer", recipient)
    pen.gap(10)
    when = V.date(rng)
    pen.line(when, align="right")
    pen.record("date", when)
    subject = rng.choice(("Payment reminder", "Order confirmation", "Contract renewal"))
    pen.line(subject, pen.body + 2, bold=True)
    pen.record("title", subject)
    number = V.doc_number(rng, "INV")
    amount = money.format(round(rng.uniform(50, 20000), 2))
    pen.line(f"Dear {recipient},")
    pen.line(f"regarding invoice {number}, the open amount is {amount}.")
    pen.record("invoice_number", number)
    pen.record("total", amount)
    paragraph(pen, rng, rng.randint(2, 5))
    pen.line("Kind regards,")
    signer = V.person(rng)
    pen.line(signer, bold=True)
    pen.record("signer", signer)
    footer(pen, rng, lang)


def draw_report(pen: Pen, rng: random.Random, lang: str, money: V.MoneyStyle) -> None:
    issuer = V.company(rng)
    header(pen, rng, issuer, lang)
    year = rng.randint(2019, 2026)
    title = (
        f"Annual Report {year}"
        if rng.random() < 0.5
        else f"Quarterly Review Q{rng.randint(1, 4)} {year}"
    )
    pen.line(title, rng.choice(HEADING_SIZES), bold=True)
    pen.record("title", title)
    growth = f"{rng.uniform(0.5, 40):.1f}%"
    revenue = money.format(round(rng.uniform(1e4, 9e6), 2))
    employees = str(rng.randint(12, 4800))
    for heading, sentence, key, value in (
        ("Highlights", f"Revenue reached {revenue} this year.", "revenue", revenue),
        ("Growth", f"Order volume grew by {growth} compared to last year.", "growth", growth),
        ("People", f"The company employed {employees} people at year end.", "employees", employees),
    ):
        pen.gap(6)
        pen.line(heading, pen.body + 2, bold=True)
        pen.line(sentence)
        pen.record(key, value)
        paragraph(pen, rng, rng.randint(1, 3))
    if rng.random() < 0.5:
        item_table(pen, rng, money, lang)


DRAWERS = {
    "invoice": draw_invoice,
    "purchase_order": draw_purchase_order,
    "receipt": draw_receipt,
    "form": draw_form,
    "table": draw_table,
    "letter": draw_letter,
    "report": draw_report,
}
