"""ANLS exactly as the DocVQA evaluation computes it, exact match, the dataset reader and
`tpdoc eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_pdf
from tpdoc.answering.anls import anls, exact_match, levenshtein, normalize, similarity
from tpdoc.answering.evaluate import load_dataset
from tpdoc.cli import app
from tpdoc.errors import UsageError


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("ab", "ba", 2)],
)
def test_levenshtein(a, b, distance):
    assert levenshtein(a, b) == levenshtein(b, a) == distance


def test_anls_follows_the_docvqa_definition():
    assert normalize("  Total\tDue \n EUR ") == "total due eur"
    assert anls("1,234.56", ["1,234.56"]) == 1.0
    assert anls("  ACME   corp ", ["Acme Corp"]) == 1.0  # case and whitespace do not count
    assert anls("1,234.5", ["1,234.56"]) == pytest.approx(1 - 1 / 8)
    assert anls("INV-2024-0153", ["no", "INV-2024-0158"]) == pytest.approx(1 - 1 / 13)  # best
    assert anls("abcd", ["abxy"]) == 0.5  # at the threshold: kept
    assert anls("abcde", ["abxyz"]) == 0.0  # similarity 0.4 < 0.5
    assert anls("", [""]) == 1.0 and anls("x", []) == 0.0
    # The official script divides by the longer length of the strings as given.
    assert similarity("a  b", "a b") == pytest.approx(1.0)
    assert similarity("ab", "a   c") == pytest.approx(1 - 2 / 5)  # not 1 - 2 / 3
    assert exact_match(" ACME  Corp", ["x", "acme corp"]) and not exact_match("ACME", ["ACME Co"])


def test_mean_anls_over_questions_in_a_run(tmp_path, scripted_model, runner):
    images, dataset = write_dataset(tmp_path)
    answers = {"total": "1,234.56", "date": "12.03.2O24", "name": "wrong entirely"}

    def script(text: str, visual: int) -> tuple[str, float]:
        return next(a for key, a in answers.items() if key in text), -0.5

    use_scripted(scripted_model(script))
    out = tmp_path / "scores.jsonl"
    args = ["eval", str(dataset), "--images", str(images), "-m", "scripted", "--out", str(out)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.stderr  # the missing image failed
    summary = json.loads(result.stdout)
    expected = [1.0, 1 - 1 / 10, 0.0, 0.0]
    assert summary["anls"] == pytest.approx(sum(expected) / 4, abs=1e-4)
    assert (summary["questions"], summary["answered"], summary["failed"]) == (4, 3, 1)
    assert summary["exact_match"] == 0.25
    scores = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["questionId"] for s in scores] == [11, 12, 13, 14]
    assert [s["anls"] for s in scores] == pytest.approx(expected, abs=1e-4)
    assert scores[1]["page"] == 2 and scores[3]["error"].endswith("no such file")
    table = runner.invoke(app, args)
    assert "ANLS" in table.stdout and "0.4750" in table.stdout


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


_SCRIPTED: list = []


@pytest.fixture(autouse=True)
def _scripted_loader(monkeypatch):
    import tpdoc.weights.loading

    real = tpdoc.weights.loading.load_document_model

    def load(spec, **kwargs):
        return _SCRIPTED[-1] if spec == "scripted" else real(spec, **kwargs)

    monkeypatch.setattr(tpdoc.weights.loading, "load_document_model", load)
    yield
    _SCRIPTED.clear()


def use_scripted(model) -> None:
    _SCRIPTED.append(model)


def write_dataset(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (120, 160), "white").save(images / "receipt.png")
    make_pdf(images / "report.pdf", [(300.0, 300.0), (300.0, 200.0)])
    data = {
        "data": [
            {"questionId": 11, "question": "What is the total?", "image": "receipt.png",
             "answers": ["1,234.56", "1234.56"]},
            {"questionId": 12, "question": "What is the date?", "image": "report.pdf",
             "answers": ["12.03.2024"], "page": 2},
            {"questionId": 13, "question": "What is the name?", "image": "report.pdf",
             "answers": ["ACME"]},
            {"questionId": 14, "question": "What is the total?", "image": "gone.png",
             "answers": ["1"]},
        ]
    }  # fmt: skip
    dataset = tmp_path / "val.json"
    dataset.write_text(json.dumps(data))
    return images, dataset


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "cannot read the dataset"),
        ('{"items": []}', 'expected a JSON object with a "data" list'),
        ('{"data": [1]}', r"data\[0\]: expected an object"),
        ('{"data": [{"question": "Q", "image": "a.png", "answers": []}]}', "'answers' must be"),
        ('{"data": [{"question": "", "image": "a.png", "answers": ["x"]}]}', "'question' must"),
        ('{"data": [{"question": "Q", "answers": ["x"]}]}', "'image' must"),
        ('{"data": [{"question": "Q", "image": "a", "answers": ["x"], "page": 0}]}', "'page'"),
    ],
)
def test_malformed_datasets_are_usage_errors(tmp_path, content, problem):
    path = tmp_path / "val.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=problem):
        load_dataset(path, tmp_path)


def test_eval_usage_errors_exit_2(runner, tmp_path):
    _, dataset = write_dataset(tmp_path)
    result = runner.invoke(app, ["eval", str(dataset), "--images", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "--images" in result.stderr and result.stdout == ""
    missing = runner.invoke(app, ["eval", str(dataset)])
    assert missing.exit_code == 2 and "--images" in missing.stderr


def test_an_existing_out_is_kept_until_the_model_has_loaded(runner, tmp_path):
    images, dataset = write_dataset(tmp_path)
    out = tmp_path / "scores.jsonl"
    out.write_text('{"questionId": 1, "anls": 1.0}\n')
    args = ["eval", str(dataset), "--images", str(images), "--out", str(out)]
    failed = runner.invoke(app, [*args, "-m", str(tmp_path / "no-model")])
    assert failed.exit_code == 1 and "no-model" in failed.stderr
    assert out.read_text() == '{"questionId": 1, "anls": 1.0}\n'  # not emptied
    # An --out that cannot be written is still refused before any model is loaded.
    bad = ["eval", str(dataset), "--images", str(images), "-m", str(tmp_path / "no-model")]
    unwritable = runner.invoke(app, [*bad, "--out", str(tmp_path / "missing" / "s.jsonl")])
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.stderr
    folder = runner.invoke(app, [*bad, "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "cannot write: is a directory" in folder.stderr


def test_a_score_without_confidence_is_valid_json():
    from tpdoc.answering.evaluate import EvalItem, QuestionScore

    item = EvalItem(question_id=1, question="Q?", file="a.png", answers=("x",))
    for confidence in (float("-inf"), float("nan"), None):
        score = QuestionScore(item, "", 0.0, False, 1, confidence)
        data = json.loads(json.dumps(score.to_json(), allow_nan=False))
        assert data["confidence"] is None
    assert QuestionScore(item, "x", 1.0, True, 1, -0.123456).to_json()["confidence"] == -0.1235
