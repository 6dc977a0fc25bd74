"""Questions people type about a document, with the answers exactly as printed.

In: a ``SynthDoc``'s facts and a ``random.Random``. Out: ``(question, answer, key)``
triples in plain English (paraphrases, lower/upper case, with and without a question
mark), including questions whose answer is not on the document, answered ``not found``.
Held-out documents (split ``eval``) are asked in phrasings training never uses
(``HELD_OUT_PARAPHRASES``), so the benchmark measures questions as people word them.
"""

from __future__ import annotations

import random

from tpdoc.answering.results import NOT_FOUND
from tpdoc.synth.pen import Fact, SynthDoc

PARAPHRASES: dict[str, tuple[str, ...]] = {
    "invoice_number": (
        "What is the invoice number", "invoice number", "What's the invoice no.",
        "Which invoice number is shown", "invoice #", "Give me the invoice number",
    ),
    "order_number": ("What is the order number", "PO number", "purchase order number",
                     "What's the order reference"),
    "receipt_number": ("What is the receipt number", "receipt no", "Which receipt number is it"),
    "date": ("What is the date", "What is the date of the document", "When was it issued",
             "date", "What date is on the document"),
    "due_date": ("When is the payment due", "What is the due date", "due date",
                 "By when must it be paid"),
    "total": ("What is the total", "What is the total amount", "How much is due",
              "total amount", "What is the grand total", "How much do I have to pay"),
    "subtotal": ("What is the subtotal", "What is the net amount", "subtotal"),
    "tax": ("How much is the tax", "What is the VAT amount", "tax amount"),
    "customer_id": ("What is the customer ID", "customer number", "What's the account number"),
    "phone": ("What is the phone number", "phone", "Which telephone number is given"),
    "iban": ("What is the IBAN", "IBAN", "Which bank account is given"),
    "issuer": ("Who issued the document", "Which company issued this", "Who is the sender",
               "issuer", "What company is this from"),
    "customer": ("Who is the customer", "Who is it addressed to", "customer name",
                 "To whom is the document addressed"),
    "title": ("What is the title of the document", "What kind of document is this", "title"),
    "revenue": ("What was the revenue", "How much revenue was reached", "revenue"),
    "growth": ("By how much did the order volume grow", "What was the growth", "growth rate"),
    "employees": ("How many people were employed", "How many employees are there",
                  "number of employees"),
    "signer": ("Who signed the letter", "Who is the letter from", "signed by"),
    "city": ("Which city is given", "What city", "city"),
    "item_price": ("What is the price of the {item}", "How much does the {item} cost",
                   "price of {item}", "unit price of the {item}"),
    "item_amount": ("What is the amount for the {item}", "line total of {item}",
                    "How much is charged for the {item} in total"),
    "item_qty": ("How many {item} were ordered", "What is the quantity of {item}",
                 "qty of {item}"),
}  # fmt: skip
# Phrasings for held-out documents only: training never sees them.
HELD_OUT_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "invoice_number": ("Tell me the invoice number", "which number does this invoice have"),
    "order_number": ("Which PO is this", "What is the purchase order reference"),
    "receipt_number": ("Tell me the receipt number", "receipt number please"),
    "date": ("On which date was this written", "document date"),
    "due_date": ("What is the payment deadline", "when does this have to be paid by"),
    "total": ("What is the final amount", "Tell me the total", "amount to pay"),
    "subtotal": ("What is the amount before tax", "net total"),
    "tax": ("How much VAT is charged", "what is the sales tax"),
    "customer_id": ("What is my customer number", "Which customer ID is given"),
    "phone": ("Which number can I call", "telephone number"),
    "iban": ("What IBAN should I pay to", "bank account number"),
    "issuer": ("Who sent this", "Which company is the sender"),
    "customer": ("Who was billed", "recipient name"),
    "title": ("What is this document called", "document title"),
    "revenue": ("How high was the revenue", "total revenue"),
    "growth": ("How much did the order volume increase", "What growth is reported"),
    "employees": ("What is the headcount", "How many staff are there"),
    "signer": ("Who wrote the letter", "Whose signature is on the letter"),
    "city": ("In which city", "which city is named"),
    "item_price": ("What does one {item} cost", "{item} unit price"),
    "item_amount": ("What is the line amount of the {item}", "{item} total"),
    "item_qty": ("How many of {item} are listed", "{item} quantity"),
}  # fmt: skip
ABSENT_CANDIDATES = ("invoice_number", "order_number", "due_date", "customer_id", "iban",
                     "revenue", "signer", "tax", "growth")  # fmt: skip


def phrase(rng: random.Random, key: str, held_out: bool = False) -> str:
    base, _, item = key.partition(":")
    table = HELD_OUT_PARAPHRASES if held_out else PARAPHRASES
    text = rng.choice(table[base]).format(item=item.lower() if rng.random() < 0.7 else item)
    style = rng.random()
    if style < 0.15:
        text = text.lower()
    elif style < 0.2:
        text = text.upper()
    elif text[0].islower() and rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + ("?" if rng.random() < 0.75 else "")


def questions_for(synth: SynthDoc, page: int, rng: random.Random, n: int,
                  absent_rate: float = 0.1,
                  held_out: bool | None = None) -> list[tuple[str, str, str]]:  # fmt: skip
    """Up to ``n`` questions about ``page`` (1-based): facts on it, and sometimes one whose
    answer the document does not have; worded in held-out phrasings on held-out documents
    (``held_out`` None), or as ``held_out`` says."""
    facts: dict[str, Fact] = {}
    for fact in synth.facts:
        base = fact.key.partition(":")[0]
        if fact.page == page and base in PARAPHRASES and fact.key not in facts:
            facts[fact.key] = fact
    keys = list(facts)
    rng.shuffle(keys)
    if held_out is None:
        held_out = synth.split == "eval"
    out = [(phrase(rng, k, held_out), facts[k].value, k) for k in keys[:n]]
    present = {f.key for f in synth.facts}
    absent = [k for k in ABSENT_CANDIDATES if k not in present]
    if absent and (rng.random() < absent_rate or not out):
        key = rng.choice(absent)
        out.append((phrase(rng, key, held_out), NOT_FOUND, key))
    return out
