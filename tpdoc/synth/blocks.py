"""The blocks the training layouts are built from, in a style drawn at random.

In: a ``Pen`` on a document, a ``random.Random``, the document's language and money style.
Out: a block drawn at the pen's cursor, with a ``Fact`` recorded for every field it
prints: a letterhead (logo, issuer, address, sometimes on a coloured band), key-value
fields (labels left of, above or right-aligned with their values; boxed form cells for
held-out documents only), an item table, totals, small print with distractors (bank
details, phone) and filler paragraphs. ``random_pen`` draws the pen's own style.
"""

from __future__ import annotations

import random

from tpdoc.synth import values as V
from tpdoc.synth.fonts import FontFace
from tpdoc.synth.pen import Pen, SynthDoc

MARGIN_RANGE = (36.0, 64.0)
BODY_SIZES = (8.0, 9.0, 10.0, 11.0, 12.0)
SMALL_SIZES = (7.0, 7.5, 8.0, 8.5)
HEADING_SIZES = (13.0, 14.0, 16.0, 18.0, 20.0)
INK = ((0, 0, 0), (0.1, 0.1, 0.15), (0.15, 0.15, 0.3), (0.2, 0.05, 0.05))
BANDS = ((0.12, 0.3, 0.55), (0.55, 0.1, 0.1), (0.1, 0.45, 0.3), (0.3, 0.3, 0.3), (0.4, 0.2, 0.5))
SHADE = (0.92, 0.93, 0.95)
HELD_OUT_FIELD_STYLES = ("boxed",)  # key-value layouts only held-out documents use


def random_pen(synth: SynthDoc, rng: random.Random, size: tuple[float, float],
               faces: tuple[FontFace, FontFace]) -> Pen:  # fmt: skip
    """A pen on a new ``size`` page of ``synth`` with a random margin, ink and body size."""
    margin = rng.uniform(*MARGIN_RANGE)
    ink = rng.choice(INK)
    body = rng.choice(BODY_SIZES)
    return Pen(synth, size, faces, margin=margin, ink=ink, body=body)


def header(pen: Pen, rng: random.Random, issuer: str, lang: str) -> None:
    """Logo, issuer name and address; sometimes on a coloured band."""
    import pymupdf

    band = rng.random() < 0.35
    top = pen.y
    ink = pen.ink
    if band:
        color = rng.choice(BANDS)
        rect = pymupdf.Rect(0, 0, pen.size[0], pen.margin + 46)
        pen.page.draw_rect(rect, color=None, fill=color)
        pen.ink = (1, 1, 1)  # white on the band
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
    pen.ink = ink
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
            pen.ensure(size * pen.line_gap * 2.2)
            pen.y += size * pen.line_gap
            pen.text(x0, pen.y, label, size * 0.85, bold=True)
            pen.y += size * pen.line_gap
            pen.text(x0, pen.y, value, size)
        else:
            pen.ensure(size * pen.line_gap)
            pen.y += size * pen.line_gap
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
        pen.ensure(s * pen.line_gap)
        pen.y += s * pen.line_gap
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
    """``sentences`` filler sentences drawn from ``SENTENCES``, wrapped to the margins."""
    pen.paragraph(" ".join(rng.choice(SENTENCES) for _ in range(sentences)))
