"""tpdoc.synth.samples: deterministic samples whose answers are really printed, written only
where asked; and the committed ``samples/`` folder is what the generator makes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from tpdoc.documents.pages import open_document
from tpdoc.errors import UsageError
from tpdoc.synth.sample_content import (
    QA,
    RECEIPT_COLUMNS,
    RECEIPT_FILE,
    REPORT_FILE,
    build_receipt,
    build_report,
    money,
    report_questions,
)
from tpdoc.synth.sample_layouts import receipt_pdf
from tpdoc.synth.samples import (
    QUESTIONS_FILE,
    README_FILE,
    main,
    make_receipt_image,
    make_report_pdf,
    write_samples,
)

SAMPLE_FILES = {REPORT_FILE, RECEIPT_FILE, QUESTIONS_FILE, README_FILE}
REPO_SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MAX_SAMPLES_BYTES = 1_500_000
MAX_RECEIPT_BYTES = 1_000_000
MAX_MEAN_GREY_DIFFERENCE = 2.0
A4_POINTS = (595.28, 841.89)


def flat(text: str) -> str:
    """Whitespace-normalised text: answers may wrap across lines in paragraphs."""
    return " ".join(text.split())


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_samples(tmp_path_factory.mktemp("samples") / "seed0", seed=0)


def read_questions(folder: Path) -> list[dict]:
    lines = (folder / QUESTIONS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# ------------------------------------------------------------------ determinism


def test_same_seed_same_bytes(samples: Path, tmp_path: Path):
    again = write_samples(tmp_path / "again", seed=0)
    assert tree(again) == tree(samples)


def test_other_seed_other_documents(samples: Path, tmp_path: Path):
    other = write_samples(tmp_path / "other", seed=1)
    before, after = tree(samples), tree(other)
    assert before[REPORT_FILE] != after[REPORT_FILE]
    assert before[RECEIPT_FILE] != after[RECEIPT_FILE]
    assert {build_report(seed).invoice_no for seed in range(6)} != {build_report(0).invoice_no}


def test_committed_samples_are_what_the_generator_makes(samples: Path):
    """Same text, questions and pixels (within a grey level: other pymupdf, Pillow or zlib
    versions may encode or anti-alias differently, so bytes are compared above only)."""
    hint = "regenerate with: python -m tpdoc.synth.samples samples --seed 0"
    assert set(tree(REPO_SAMPLES)) == SAMPLE_FILES, hint
    for name in (QUESTIONS_FILE, README_FILE):
        assert (REPO_SAMPLES / name).read_bytes() == (samples / name).read_bytes(), hint
    with (
        pymupdf.open(REPO_SAMPLES / REPORT_FILE) as old,
        pymupdf.open(samples / REPORT_FILE) as new,
    ):
        assert [p.get_text() for p in old] == [p.get_text() for p in new], hint
    with Image.open(REPO_SAMPLES / RECEIPT_FILE) as old, Image.open(samples / RECEIPT_FILE) as new:
        assert old.size == new.size, hint
        difference = np.abs(np.asarray(old, dtype=int) - np.asarray(new, dtype=int))
        assert difference.mean() < MAX_MEAN_GREY_DIFFERENCE, hint
    total = sum(p.stat().st_size for p in REPO_SAMPLES.iterdir())
    assert total < MAX_SAMPLES_BYTES


# --------------------------------------------------------------- where it writes


def test_writes_only_its_files_inside_the_folder(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("untouched")
    out = tmp_path / "deep" / "er"
    assert write_samples(out, seed=2) == out
    assert set(tree(tmp_path)) == {"keep.txt"} | {f"deep/er/{name}" for name in SAMPLE_FILES}
    assert (tmp_path / "keep.txt").read_text() == "untouched"


def test_existing_symlink_is_replaced_not_written_through(tmp_path: Path):
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / REPORT_FILE)
    write_samples(out, seed=0)
    assert outside.read_bytes() == b"precious"
    assert not (out / REPORT_FILE).is_symlink()


def test_refuses_a_file_as_folder_and_wrong_suffixes(tmp_path: Path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        write_samples(a_file)
    with pytest.raises(UsageError, match=r"ending in \.pdf"):
        make_report_pdf(tmp_path / "report.png", seed=0)
    with pytest.raises(UsageError, match=r"ending in \.png"):
        make_receipt_image(tmp_path / "receipt.pdf", seed=0)
    assert set(tree(tmp_path)) == {"file.txt"}


# ---------------------------------------------------------------------- the PDF


def test_report_is_three_a4_pages_with_builtin_fonts_8_to_16_pt(samples: Path):
    with pymupdf.open(samples / REPORT_FILE) as doc:
        assert doc.page_count == 3
        fonts, sizes = set(), set()
        for page in doc:
            assert (page.rect.width, page.rect.height) == pytest.approx(A4_POINTS, abs=0.01)
            for block in page.get_text("dict")["blocks"]:
                for line in block.get("lines", []):
                    for span in line["spans"]:
                        fonts.add(span["font"])
                        sizes.add(span["size"])
    assert {"Helvetica", "Helvetica-Bold", "Times-Roman", "Times-Bold", "Courier"} <= fonts
    assert min(sizes) >= 8 and max(sizes) <= 16


@pytest.mark.parametrize("seed", range(8))
def test_report_answers_are_printed_on_their_page(tmp_path: Path, seed: int):
    qas = make_report_pdf(tmp_path / "r.pdf", seed)
    assert len(qas) >= 8
    with pymupdf.open(tmp_path / "r.pdf") as doc:
        texts = [flat(page.get_text()) for page in doc]
    for qa in qas:
        assert qa.file == "r.pdf"
        assert qa.answer in texts[qa.page - 1], (qa, texts[qa.page - 1])


@pytest.mark.parametrize("seed", range(8))
def test_report_totals_add_up(seed: int):
    report = build_report(seed)
    assert report.subtotal_cents == sum(i.quantity * i.unit_cents for i in report.items)
    assert report.total_cents == report.subtotal_cents + report.vat_cents
    assert abs(report.vat_cents * 100 - report.subtotal_cents * report.vat_rate) <= 50
    assert len({i.name for i in report.items}) == len(report.items)  # questions are unambiguous


def test_money_format():
    assert [money(c) for c in (0, 5, 99, 123456, 123456789)] == [
        "0.00",
        "0.05",
        "0.99",
        "1,234.56",
        "1,234,567.89",
    ]


# ------------------------------------------------------------------ the receipt


@pytest.mark.parametrize("seed", range(8))
def test_receipt_answers_are_in_the_record_of_what_is_drawn(seed: int):
    receipt = build_receipt(seed)
    record = [line.strip() for line in receipt.lines]
    for qa in receipt.qas:
        assert qa.page == 1
        assert any(qa.answer in line for line in record), (qa, record)
    # The record is exactly what the vector page draws, line by line.
    with pymupdf.open(stream=receipt_pdf(receipt), filetype="pdf") as doc:
        drawn = [line.strip() for line in doc[0].get_text().splitlines() if line.strip()]
    assert drawn == record


def test_receipts_for_many_seeds_fit_the_paper_and_add_up():
    payments = set()
    for seed in range(300):
        receipt = build_receipt(seed)
        assert all(len(line) <= RECEIPT_COLUMNS for line in receipt.lines), receipt.lines
        amounts = {line.split()[0]: line.split()[-1] for line in receipt.lines if line.strip()}
        if "Change" in amounts:
            assert not amounts["Change"].startswith("-")
        payments.add(receipt.qas[-1].answer)
    assert payments == {"VISA", "MASTERCARD", "CASH", "GIROCARD"}


def test_receipt_png_is_a_narrow_long_greyscale_scan(samples: Path):
    path = samples / RECEIPT_FILE
    assert path.stat().st_size < MAX_RECEIPT_BYTES
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "L"
        assert image.height > 1.5 * image.width
    with open_document(path) as doc:
        assert (doc.kind, doc.page_count) == ("image", 1)


def test_receipt_qas_match_the_builder(tmp_path: Path):
    qas = make_receipt_image(tmp_path / "till.png", seed=5)
    assert qas == list(build_receipt(5, "till.png").qas)


# ------------------------------------------------------------ questions.jsonl


def test_questions_file(samples: Path):
    records = read_questions(samples)
    assert len(records) == len(report_questions(build_report(0))) + len(build_receipt(0).qas)
    assert len({r["id"] for r in records}) == len(records)
    for record in records:
        assert list(record) == ["id", "file", "question", "answers", "page"]
        assert record["file"] in {REPORT_FILE, RECEIPT_FILE}
        assert record["question"].endswith("?")
        assert isinstance(record["answers"], list) and record["answers"][0]
        with open_document(samples / record["file"]) as doc:
            assert 1 <= record["page"] <= doc.page_count


def test_questions_match_the_documents(samples: Path):
    qas = [
        QA(r["file"], r["question"], r["answers"][0], r["page"]) for r in read_questions(samples)
    ]
    with pymupdf.open(samples / REPORT_FILE) as doc:
        texts = [flat(page.get_text()) for page in doc]
    record = [line.strip() for line in build_receipt(0).lines]
    for qa in qas:
        if qa.file == REPORT_FILE:
            assert qa.answer in texts[qa.page - 1]
        else:
            assert any(qa.answer in line for line in record)


def test_readme_gives_the_command(samples: Path):
    assert "python -m tpdoc.synth.samples samples --seed 0" in (samples / README_FILE).read_text()


# ----------------------------------------------------------------------- the CLI


def test_cli_writes_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "cli"
    assert main([str(out), "--seed", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert set(tree(out)) == SAMPLE_FILES


def test_cli_reports_errors_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main([str(a_file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {a_file}: not a folder")
