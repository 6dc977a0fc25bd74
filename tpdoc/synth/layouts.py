"""Synthetic business documents for training, drawn with pymupdf, with a record of what
they say.

In: a ``random.Random``, a document kind and a font split. Out: ``SynthDoc``: a pymupdf
document (vector pages) and its facts: every field printed (key, label, value, page),
the item table, the title and the issuer. Kinds: invoice, receipt, purchase order, form,
table, letter and report; several layouts each, put together from ``blocks`` in a
random style (labels left of or above values, right-aligned amounts, shaded rows, boxes,
logos, coloured bands, small print beside large headings, bank details and phone numbers
as distractors).
"""

from __future__ import annotations

import random

from tpdoc.synth import values as V
from tpdoc.synth.blocks import (
    HEADING_SIZES,
    footer,
    header,
    item_table,
    key_values,
    paragraph,
    random_pen,
    totals,
)
from tpdoc.synth.fonts import choose_faces
from tpdoc.synth.pen import Pen, SynthDoc

KINDS = ("invoice", "receipt", "purchase_order", "form", "table", "letter", "report")
A4 = (595.28, 841.89)
LETTER = (612.0, 792.0)
RECEIPT_WIDTH = 226.8  # 80 mm


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
        pen = random_pen(synth, rng, (RECEIPT_WIDTH, height), faces)
        pen.margin = rng.uniform(10, 16)
        pen.y = pen.margin
        pen.body = rng.choice((7.5, 8.0, 8.5, 9.0))
        draw_receipt(pen, rng, lang, money)
    else:
        pen = random_pen(synth, rng, rng.choice((A4, A4, LETTER)), faces)
        DRAWERS[kind](pen, rng, lang, money)
    return synth


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
        pen.ensure(pen.body * pen.line_gap)
        pen.y += pen.body * pen.line_gap
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
