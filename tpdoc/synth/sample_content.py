"""What the sample documents say: a business report and a till receipt, with their
questions, all drawn from a seed.

In: a seed. Out: ``Report`` (everything the 3-page report prints, before layout) with
``report_questions`` and ``report_paragraphs``; ``Receipt`` (exactly the lines the receipt
prints, in order, and its questions); ``QA``s: a question, its answer verbatim as printed
and the 1-based page it is on. Each document draws from its own ``random.Random``,
seeded with the document's name and the seed, so the two can change apart. Amounts are
integer cents, printed exactly (no floating point). All names and numbers are invented.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

REPORT_FILE = "report.pdf"
RECEIPT_FILE = "receipt.png"
COMMAND = "python -m tpdoc.synth.samples"  # also the report's PDF producer
RECEIPT_COLUMNS = 38  # characters per receipt line: Courier at the receipt size fits

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


def build_report(seed: int) -> Report:
    """The report's content for ``seed``: 4-6 order lines, parties, dates and figures."""
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
    """Questions about ``report`` saved as ``file``, each on the page its answer is on."""
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


def report_paragraphs(report: Report) -> dict[str, list[str]]:
    """The running text by section heading (the headings in the order drawn)."""
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


def build_receipt(seed: int, file: str = RECEIPT_FILE) -> Receipt:
    """The receipt for ``seed`` as ``RECEIPT_COLUMNS``-wide lines, and its questions about
    ``file``: shop, total, date, number, the dearest line and the payment."""
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
