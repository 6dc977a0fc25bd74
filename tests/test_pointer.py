"""The pointer answer head: slots, reading a span back, training targets, answering."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

from tests.conftest import tiny_model_config
from tpdoc.errors import ConfigError
from tpdoc.model.pointer import (
    AnswerConfig,
    best_span,
    pointer_inputs,
    slot_index,
    slot_position,
)
from tpdoc.model.readout import (
    BLANK,
    SPACE,
    SlotGrid,
    char_class,
    class_char,
    slot_labels,
    span_text,
)

GRID = SlotGrid()  # the embedded model's: 16-px cells, 2 x 4 sub-cells, s = 2, G = 24


def write(chars: str, x: float, y: float, pitch: float = 8.0) -> list:
    """Characters on one line, centres ``pitch`` pixels apart."""
    return [(c, (x + i * pitch, y)) for i, c in enumerate(chars)]


def test_slot_numbering_round_trips_across_a_row_of_tiles():
    for index in (0, 31, 32, 4607, 4608, 3 * 4608 - 1):
        assert slot_index(*slot_position(index, GRID), GRID) == index
    # The first slot of the second tile sits right of the first tile's last column.
    assert slot_position(4608, GRID) == (0, GRID.slot_cols)
    labels = torch.arange(GRID.slot_rows * GRID.slot_cols).view(GRID.slot_rows, GRID.slot_cols)
    assert torch.equal(GRID.to_grid(GRID.from_grid(labels)), labels)
    by_token = GRID.from_grid(labels)  # [Q, S]
    r, c = slot_position(5 * GRID.per_token + 9, GRID)
    assert by_token[5, 9] == labels[r, c]


def test_a_character_beats_a_space_in_the_same_slot():
    labels = slot_labels([("a", (10.0, 10.0)), (" ", (10.5, 10.5)), (" ", (30.0, 10.0))], GRID)
    assert labels[1, 2] == char_class("a")
    assert labels[1, 7] == SPACE
    assert int((labels != BLANK).sum()) == 2
    assert class_char(char_class("€")) == "€" and class_char(SPACE) == " "


def test_span_text_reads_one_line_between_start_and_end():
    chars = write("Total: 1,234.56 EUR", 20.0, 44.0)
    classes = slot_labels(chars, GRID)
    start = GRID.slot_of(*chars[7][1])
    end = GRID.slot_of(*chars[14][1])
    read = span_text(classes, start, end, GRID)
    assert read.text == "1,234.56"
    x0, y0, x1, y1 = read.box
    assert x0 <= chars[7][1][0] < x1 and y0 <= 44.0 < y1
    assert span_text(classes, end, start, GRID).text == ""  # backwards reads nothing


def test_a_slightly_rotated_line_is_read_by_column_across_two_slot_rows():
    # Each character 0.5 px lower than the last: the line crosses from slot row 5 to 6.
    chars = [(c, (20.0 + 8 * i, 46.0 + 0.5 * i)) for i, c in enumerate("ABCDEFGHIJ")]
    classes = slot_labels(chars, GRID)
    rows = {GRID.slot_of(*p)[0] for _, p in chars}
    assert rows == {5, 6}
    read = span_text(classes, GRID.slot_of(*chars[0][1]), GRID.slot_of(*chars[-1][1]), GRID)
    assert read.text == "ABCDEFGHIJ"


def test_a_span_over_several_lines_reads_them_in_order():
    chars = write("noise Main Street 5", 20.0, 20.0) + write("10115 Berlin more", 20.0, 60.0)
    classes = slot_labels(chars, GRID)
    start = GRID.slot_of(*chars[6][1])  # "M"
    end = GRID.slot_of(*chars[19 + 11][1])  # the "n" of Berlin
    assert span_text(classes, start, end, GRID).text == "Main Street 5 10115 Berlin"


def test_best_span_prefers_the_peaked_span_and_otherwise_not_here():
    chars = write("Due 12.03.2024", 40.0, 100.0)
    classes = slot_labels(chars, GRID)
    n = GRID.out_grid**2 * GRID.per_token
    start, end = torch.zeros(n + 1), torch.zeros(n + 1)
    i = slot_index(*GRID.slot_of(*chars[4][1]), GRID)
    j = slot_index(*GRID.slot_of(*chars[13][1]), GRID)
    start[i], end[j] = 20.0, 20.0
    span = best_span(start, end, classes, GRID)
    assert span.text == "12.03.2024" and span.logprob > span.null_logprob
    start[-1], end[-1] = 40.0, 40.0
    assert best_span(start, end, classes, GRID).text is None


def test_only_tokens_with_print_enter_the_sequence_at_their_own_positions(tiny_tokenizer):
    from tpdoc.model.document_model import DocumentModel

    config = replace(tiny_model_config(tiny_tokenizer), answer=AnswerConfig(kind="pointer"))
    model = DocumentModel.from_config(config, tiny_tokenizer)
    q = config.projector.tokens_per_tile  # 4
    views = torch.randn(2, q, 32)
    keep = torch.tensor([[True, False, False, True], [False, True, False, False]])
    batch = pointer_inputs(model.language_model, [[1, 5, 6]], [views], [keep], 2, 7)
    # question (3) + tile 0 (tokens 0 and 3) + separator + tile 1 (token 1) + end marker
    assert batch.inputs.shape[1] == 3 + 2 + 1 + 1 + 1
    assert batch.positions[0].tolist() == [0, 1, 2, 3, 6, 7, 9, 12]
    assert batch.token[0].tolist() == [0, 3, 5]
    hidden = torch.randn(1, batch.inputs.shape[1], 32)
    start, _ = model.pointer.scores(hidden, batch)
    s = config.slot_grid.per_token
    assert start.shape == (1, 2 * q * s + 1)
    blank = start[0, : 2 * q * s].view(2 * q, s)[[1, 2, 4, 6, 7]]
    assert bool((blank < -1e8).all())  # blank tokens cannot be pointed at


def test_pointer_config_round_trips_and_generating_configs_do_not_change(tiny_tokenizer):
    from tpdoc.errors import ConfigError
    from tpdoc.model.config import ModelConfig

    plain = tiny_model_config(tiny_tokenizer)
    assert "answer" not in plain.to_dict()
    pointer = replace(plain, answer=AnswerConfig(kind="pointer"))
    assert ModelConfig.from_dict(pointer.to_dict()).answer.kind == "pointer"
    with pytest.raises(ConfigError, match="pointer"):
        replace(pointer, projector=replace(plain.projector, kind="mlp2x_gelu"))
    with pytest.raises(ConfigError, match="answer kind"):
        AnswerConfig(kind="ocr")


def test_span_samples_target_the_answer_and_say_not_here_elsewhere():
    from tpdoc.answering.results import NOT_FOUND
    from tpdoc.train.run_pointer import row_grid, row_labels
    from tpdoc.train.spans import NOT_HERE, span_sample
    from tpdoc.weights.registry import load_config

    config = load_config(None)
    rng = random.Random(3)
    located = 0
    for _ in range(6):
        sample = span_sample(rng, config.tiling, GRID, "train", 4)
        if sample is None:
            continue
        answers = dict(sample.asked)
        for target in sample.targets:
            if target.start == NOT_HERE:
                continue
            located += 1
            classes = row_grid(row_labels(sample, target.row), GRID)
            start, end = slot_position(target.start, GRID), slot_position(target.end, GRID)
            assert span_text(classes, start, end, GRID).text == " ".join(
                answers[target.question].split()
            )
            assert answers[target.question] != NOT_FOUND
        rows_by_question = {}
        for target in sample.targets:
            rows_by_question.setdefault(target.question, []).append(target)
        for targets in rows_by_question.values():
            assert sum(t.start != NOT_HERE for t in targets) <= 1
            assert len({t.row for t in targets}) == len(targets)
    assert located >= 6


def test_a_pointer_learns_to_point_at_a_true_read_out(tiny_tokenizer):
    from tpdoc.model.document_model import DocumentModel
    from tpdoc.train.run_pointer import (
        pointer_logits,
        printed,
        step_loss,
        true_item,
        true_tokens,
    )

    torch.manual_seed(0)
    config = replace(tiny_model_config(tiny_tokenizer), answer=AnswerConfig(kind="pointer"))
    model = DocumentModel.from_config(config, tiny_tokenizer)
    grid = config.slot_grid
    q, s = config.projector.tokens_per_tile, grid.per_token
    labels = torch.zeros(1, q, s, dtype=torch.long)
    labels[0, 1, 3], labels[0, 2, 5], labels[0, 3, 0] = char_class("7"), 10, 11
    items = [
        true_item("What is the total?", labels, 1 * s + 3, 3 * s),
        true_item("Who?", labels, -1, -1),
    ]
    params = [p for n, p in model.named_parameters() if not n.startswith("pointer.readout")]
    opt = torch.optim.AdamW(params, lr=3e-3)
    rng = torch.Generator().manual_seed(0)
    first = step_loss(model, items, rng, 0.0).item()
    for _ in range(60):
        loss = step_loss(model, items, rng, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 4
    keep = printed(labels)
    start, end = pointer_logits(
        model, ["What is the total?", "Who?"], [true_tokens(model, labels, keep)] * 2, [keep] * 2
    )
    assert start[0].argmax().item() == 1 * s + 3 and end[0].argmax().item() == 3 * s
    assert start[1].argmax().item() == start.shape[1] - 1  # "not here"


def test_a_pointer_model_saves_loads_and_answers_through_document_qa(tiny_tokenizer, tmp_path):
    from tests.conftest import make_pdf
    from tpdoc.answering.qa import DocumentQA
    from tpdoc.answering.results import NOT_FOUND
    from tpdoc.model.document_model import DocumentModel
    from tpdoc.model.readout import CHARSET
    from tpdoc.weights.checkpoint import load_model, save_model

    torch.manual_seed(0)
    config = replace(tiny_model_config(tiny_tokenizer), answer=AnswerConfig(kind="pointer"))
    model = DocumentModel.from_config(config, tiny_tokenizer).eval()
    with torch.no_grad():  # a read-out that sees print everywhere, so the pointer has a choice
        model.pointer.readout.proj.bias.normal_(0, 3)
    folder = save_model(model, tmp_path / "pointer")
    loaded = load_model(folder)
    assert loaded.pointer is not None
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    pdf = make_pdf(tmp_path / "doc.pdf", [(200, 200), (200, 300)])
    qa = DocumentQA(loaded, cache=False)
    result = qa.ask(pdf, "What is the total?", all_pages=True)
    assert result.answer == NOT_FOUND or set(result.answer) <= set(CHARSET + " \ufffd")
    record = result.to_json()
    assert "box" in record and len(record["pages"]) == 2
    for page in record["pages"]:
        if page["answer"] != NOT_FOUND:
            x0, y0, x1, y1 = page["box"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    # The page's answer is the model's own pointing, page by page.
    direct = qa.ask(pdf, "What is the total?", pages="2")
    assert direct.answer == result.pages[1].answer


def test_a_page_that_found_an_answer_beats_pages_that_did_not():
    from tpdoc.answering.results import NOT_FOUND, PageAnswer, best_page

    pages = (
        PageAnswer(1, NOT_FOUND, -0.01, None, False),
        PageAnswer(2, "42.00", -2.5, None, False),
        PageAnswer(3, NOT_FOUND, -0.001, None, False),
    )
    assert best_page(pages).page == 2
    assert best_page((pages[0], pages[2])).page == 3


def test_stages_r_and_p_train_apart_and_compose_into_one_model(tmp_path, monkeypatch):
    from tpdoc.train import run_pointer, run_read
    from tpdoc.train.compose import compose_model, half_precision
    from tpdoc.weights.checkpoint import load_model
    from tpdoc.weights.registry import load_config

    torch.set_num_threads(1)
    # Two steps of each on the embedded config (its tower grown by one block at stride 8,
    # a fresh packer wider than the language model), a held-out page each: they run and save.
    shipped = load_config(None).vision.config.get("stage_blocks") or [0, 0, 0]
    blocks = (*shipped[:-1], shipped[-1] + 1)
    read = run_read.train_read(
        tmp_path / "r", steps=2, eval_every=2, workers=0, eval_pages=1, stage_blocks=blocks,
        packer=(384, 512),
    )  # fmt: skip
    assert 0 <= read["heldout_read_acc"] <= 1 and read["heldout_printed_slots"] > 0
    # The grown tower and the packer travel with the weights: resuming, halving and
    # composing know them.
    resumed = run_read.train_read(
        tmp_path / "r", steps=3, eval_every=3, workers=0, eval_pages=1, resume=True
    )
    assert resumed["step"] == 3
    half = half_precision(tmp_path / "r" / run_read.WEIGHTS_FILE, tmp_path / "half.safetensors")
    config = run_read.read_config(half)
    assert config.vision.config["stage_blocks"] == list(blocks)
    assert (config.projector.embed_dim, config.projector.heads, config.projector.llm_dim) == (
        384, 8, 512,
    )  # fmt: skip
    point = run_pointer.train_pointer(
        tmp_path / "p", steps=2, batch=4, eval_every=2, workers=0, eval_pages=1
    )
    assert point["heldout_questions"] > 0
    resumed = run_pointer.train_pointer(
        tmp_path / "p", steps=3, batch=4, eval_every=3, workers=0, eval_pages=1, resume=True
    )
    assert resumed["step"] == 3
    # Stage J: the same pointer on the tower's own read-out of rendered pages.
    joint = run_pointer.train_pointer(
        tmp_path / "j", steps=1, batch=4, eval_every=1, workers=0, eval_pages=1,
        init=tmp_path / "p" / run_pointer.WEIGHTS_FILE,
        read=tmp_path / "r" / run_read.WEIGHTS_FILE,
    )  # fmt: skip
    assert joint["heldout_questions"] > 0
    folder = compose_model(
        tmp_path / "r" / run_read.WEIGHTS_FILE, tmp_path / "p" / run_pointer.WEIGHTS_FILE,
        tmp_path / "model",
    )  # fmt: skip
    model = load_model(folder)
    from safetensors.torch import load_file

    for name, tensor in load_file(str(tmp_path / "p" / run_pointer.WEIGHTS_FILE)).items():
        assert torch.equal(dict(model.named_parameters())[name], tensor)
    assert model.config.answer.kind == "pointer"
    assert len(model.vision.net.stage_blocks[2]) == blocks[-1]
    # Packed tokens 512 wide feed the read-out; the language model sees its 256-wide tokens.
    with torch.no_grad():
        packed = model.encode(torch.zeros(1, 3, 384, 384))
        tokens = model.pointer.tokens(model.pointer.read(packed))
    assert packed.shape[-1] == 512 and tokens.shape[-1] == model.config.text["hidden_size"] == 256
    with pytest.raises(ConfigError, match="--packer 100,256: give E,D"):
        run_read.widened(model.config, (100, 256))


def test_a_widened_packer_and_read_out_compute_what_they_did():
    from tpdoc.model.packer import PackerConfig, TokenPacker
    from tpdoc.model.readout import ReadoutHead
    from tpdoc.train.widen import widen_packer

    torch.manual_seed(0)
    small = PackerConfig(vision_dim=16, num_levels=2, embed_dim=16, num_heads=2, llm_dim=12,
                         grid=4, scale=2, region_position=True)  # fmt: skip
    wide = replace(small, embed_dim=48, num_heads=6, llm_dim=24)
    packer, readout = TokenPacker(small), ReadoutHead(12, slots=4, classes=5, hidden=8)
    for p in readout.parameters():  # the head starts at zero; trained, it is not
        torch.nn.init.normal_(p)
    state = {f"projector.{k}": v for k, v in packer.state_dict().items()}
    state |= {f"pointer.readout.{k}": v for k, v in readout.state_dict().items()}
    grown = widen_packer(state, small, wide, seed=1)
    packer2, readout2 = TokenPacker(wide), ReadoutHead(24, slots=4, classes=5, hidden=8)
    packer2.load_state_dict({k[10:]: v for k, v in grown.items() if k.startswith("projector.")})
    readout2.load_state_dict({k[16:]: v for k, v in grown.items() if k.startswith("pointer.")})
    feats, levels = torch.randn(3, 16, 16), torch.randn(3, 16, 32)
    with torch.no_grad():
        before = readout(packer(feats, levels))  # [3, 4, 4, 5]
        after = readout2(packer2(feats, levels))
    assert torch.allclose(before, after, atol=1e-4), (before - after).abs().max()
    # The copies of a unit are not identical, so they can learn apart.
    w = grown["projector.mlp.2.weight"]  # [24, 24]: columns 2j and 2j+1 copy unit j
    assert not torch.allclose(w[:, 0::2], w[:, 1::2])
    with pytest.raises(ConfigError, match="whole multiples"):
        widen_packer(state, small, replace(small, embed_dim=24, num_heads=3), seed=1)


def word_pieces():
    """A word-level tokenizer standing in for WordLlama's word pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "what", "is", "the", "total", "headcount", "?"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_question_words_follow_each_byte_and_travel_with_the_model(tiny_tokenizer, tmp_path):
    from tpdoc.errors import ModelFormatError
    from tpdoc.model.document_model import DocumentModel
    from tpdoc.model.question_words import WORDS_FILE
    from tpdoc.train.run_pointer import pointer_logits, printed, true_tokens
    from tpdoc.weights.checkpoint import load_model, save_model

    torch.manual_seed(0)
    answer = AnswerConfig(kind="pointer", question_words=8, question_vocab=16)
    config = replace(tiny_model_config(tiny_tokenizer), answer=answer)
    model = DocumentModel.from_config(config, tiny_tokenizer).eval()
    vectors = torch.randn(16, 12)
    words = model.pointer.words.use(word_pieces(), vectors)
    assert torch.equal(words.table, vectors[:, :8])  # cut to the configured width
    question = "What is the TOTAL?"
    enc = tiny_tokenizer(question, return_offsets_mapping=True)
    pieces = words.pieces(question, enc.offset_mapping)
    read = {question[s:e]: p for (s, e), p in zip(enc.offset_mapping, pieces, strict=True)}
    assert pieces[0] == -1  # the start token belongs to no word
    assert {read[c] for c in "TOTAL"} == {4} and read["?"] == 6  # case folded
    assert read[" "] == -1 and read["W"] == 1
    ids, added = model.pointer.question(tiny_tokenizer, question)
    assert ids == enc.input_ids and added.shape == (len(ids), config.projector.llm_dim)
    # The projection starts at zero: a model gaining question words answers as before.
    labels = torch.zeros(1, 9, GRID.per_token, dtype=torch.long)
    labels[0, 1, 3:6] = torch.tensor([char_class(c) for c in "1.5"])
    keep = printed(labels)
    rows = [true_tokens(model, labels, keep)]
    before = pointer_logits(model, [question], rows, [keep])
    assert not added.any()
    with torch.no_grad():
        words.proj.weight.normal_()
    after = pointer_logits(model, [question], rows, [keep])
    assert not torch.allclose(before[0], after[0])
    # Saved and loaded, the model knows the same words; without its word pieces, a clear error.
    folder = save_model(model, tmp_path / "words")
    loaded = load_model(folder)
    assert torch.equal(loaded.pointer.question(tiny_tokenizer, question)[1], words(
        question, enc.offset_mapping))  # fmt: skip
    # A question reaches the model's words through DocumentQA as through the trainer.
    from tests.conftest import make_pdf
    from tpdoc.answering.qa import DocumentQA

    seen: list[str] = []
    original = loaded.pointer.words.forward
    loaded.pointer.words.forward = lambda text, spans: seen.append(text) or original(text, spans)
    DocumentQA(loaded, cache=False).ask(make_pdf(tmp_path / "a.pdf", [(200, 200)]), question)
    assert seen == [question]
    (folder / WORDS_FILE).unlink()
    with pytest.raises(ModelFormatError, match=WORDS_FILE):
        load_model(folder)


def test_rewording_swaps_content_words_for_their_nearest_vectors_only():
    from tokenizers import Tokenizer, models

    from tpdoc.model.question_words import QuestionWords
    from tpdoc.train.reword import Rewording

    pieces = ["▁total", "▁amount", "▁summe", "▁chair", "▁what", "▁banana", "▁whatever"]
    tok = Tokenizer(models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="▁what"))
    table = torch.tensor([[1.0, 0.1], [0.9, 0.2], [0.95, 0.0], [-1.0, 0.3], [0.0, 1.0],
                          [-0.9, -0.5], [0.1, 0.9]])  # fmt: skip
    words = QuestionWords(len(pieces), 2, 4).use(tok, table)
    always = Rewording(words, ["What is the total?"], rate=1.0, neighbours=2)
    rng = random.Random(0)
    seen = {always("What is the TOTAL?", rng) for _ in range(20)}
    # "total" becomes one of its two nearest words, in its case; "What" and "is" stay.
    assert seen == {"What is the AMOUNT?", "What is the SUMME?"}
    assert Rewording(words, ["total"], rate=0.0)("the total", rng) == "the total"


def test_wrong_answers_are_told_apart_by_how_they_fail():
    from tpdoc.answering.results import NOT_FOUND
    from tpdoc.train.run_pointer import error_kind

    assert error_kind(NOT_FOUND, "42.00") == "not_found"
    assert error_kind("605.39 £5,448.51 Subtotal:", "605.39 £") == "overlap"  # ran on
    assert error_kind("Laurent", "Jonas  Laurent") == "overlap"  # started late
    assert error_kind("246.34", "381.47") == "other"  # another field


def test_read_back_errors_count_characters_in_reading_order_not_slots():
    from tpdoc.train.run_read import row_edits

    truth = GRID.from_grid(slot_labels(write("Total 42.00", 10, 20), GRID))  # [Q, S]
    assert row_edits(truth, truth, GRID) == (0, len("Total 42.00"))
    # The same line read one slot to the right is read right; one character wrong is one edit.
    shifted = GRID.from_grid(torch.roll(GRID.to_grid(truth), 1, dims=1))
    assert row_edits(shifted, truth, GRID)[0] == 0
    wrong = GRID.to_grid(truth).clone()
    wrong[wrong == char_class("4")] = char_class("A")
    assert row_edits(GRID.from_grid(wrong), truth, GRID)[0] == 1


def test_an_end_scored_given_its_start_starts_as_before_and_learns(tiny_tokenizer):
    from tpdoc.model.document_model import DocumentModel
    from tpdoc.train.run_pointer import (
        pointer_logits,
        pointer_states,
        printed,
        step_loss,
        true_item,
        true_tokens,
    )

    torch.manual_seed(0)
    answer = AnswerConfig(kind="pointer", end_given_start=4)
    config = replace(tiny_model_config(tiny_tokenizer), answer=answer)
    model = DocumentModel.from_config(config, tiny_tokenizer)
    grid = config.slot_grid
    q, s = config.projector.tokens_per_tile, grid.per_token
    labels = torch.zeros(1, q, s, dtype=torch.long)
    labels[0, 1, 3], labels[0, 2, 5], labels[0, 3, 0] = char_class("7"), 10, 11
    keep = printed(labels)
    rows, asked = [true_tokens(model, labels, keep)] * 2, ["What is the total?", "Who?"]
    given = torch.tensor([1 * s + 3, -1])
    # The key starts at zero: ends given a start are the ends scored apart, spans alike.
    with torch.no_grad():
        apart, paired = pointer_logits(model, asked, rows, [keep] * 2), pointer_logits(
            model, asked, rows, [keep] * 2, given
        )  # fmt: skip
        hidden, batch = pointer_states(model, asked, rows, [keep] * 2)
        grids = [torch.cat(list(grid.to_grid(labels)), dim=1)] * 2
        spans = model.pointer.spans(hidden, batch, grids, [q * s] * 2)
    assert torch.equal(apart[1], paired[1])
    assert spans == [best_span(apart[0][i], apart[1][i], grids[i], grid) for i in range(2)]
    items = [true_item(asked[0], labels, 1 * s + 3, 3 * s), true_item(asked[1], labels, -1, -1)]
    params = [p for n, p in model.named_parameters() if not n.startswith("pointer.readout")]
    opt = torch.optim.AdamW(params, lr=3e-3)
    rng = torch.Generator().manual_seed(0)
    for _ in range(60):
        loss = step_loss(model, items, rng, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.pointer.pair.key.weight.abs().sum() > 0  # the pairing learnt something
    start, end = pointer_logits(model, asked, rows, [keep] * 2, given)
    assert start[0].argmax().item() == 1 * s + 3 and end[0].argmax().item() == 3 * s
    # A row told "no start" keeps its unpaired end: "not here".
    assert end[1].argmax().item() == end.shape[1] - 1
