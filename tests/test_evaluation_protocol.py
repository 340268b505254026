"""V*Bench's published layout, option orders and sampling across subsets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from seal_agent.evaluation import (
    DatasetError,
    EvalItem,
    sample_items,
    shown_options,
    vstar_items,
)
from seal_agent.evaluation.protocol import run_seeds

#: One annotation per subset as the release has them (correct option first).
GLOVE = {
    "target_object": ["glove"],
    "bbox": [[564, 142, 155, 157]],
    "question": "What is the material of the glove?",
    "options": ["rubber", "cotton", "leather", "plastic"],
}
CUP = {
    "target_object": ["cup", "dog"],
    "bbox": [[10, 10, 20, 20], [100, 50, 40, 40]],
    "question": "Is the cup on the left or right side of the dog?",
    "options": [
        "The cup is on the left side of the dog.",
        "The cup is on the right side of the dog.",
    ],
}


def _vstar(root: Path, *, questions_file: bool = True, ocr: bool = False) -> Path:
    """A tiny copy of the release: subset folders of NAME.jpg + NAME.json, and the
    fixed-order test_questions.jsonl at the root, its text written as the release's."""
    for subset, name, annotation in [
        ("direct_attributes", "sa_4690", GLOVE),
        ("relative_position", "sa_7715", CUP),
        *([("OCR", "ocr_1", {**GLOVE, "question": "What is written?"})] if ocr else []),
    ]:
        folder = root / subset
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (800, 600), (90, 90, 90)).save(folder / f"{name}.jpg")
        (folder / f"{name}.json").write_text(json.dumps(annotation))
    if questions_file:
        lines = [
            {
                "image": "direct_attributes/sa_4690.jpg",
                "text": "What is the material of the glove?\n(A) rubber\n(B) cotton\n(C) leather\n"
                "(D) plastic\nAnswer with the option's letter from the given choices directly.",
                "category": "direct_attributes",
                "question_id": 0,
                "label": "A",
            },
            {
                "image": "relative_position/sa_7715.jpg",
                "text": "Is the cup on the left or right side of the dog?\n"
                "(A) The cup is on the right side of the dog.\n"
                "(B) The cup is on the left side of the dog.\n"
                "Answer with the option's letter from the given choices directly.",
                "category": "relative_position",
                "question_id": 1,
                "label": "B",
            },
        ]
        (root / "test_questions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def test_official_order_is_taken_from_the_questions_file(tmp_path):
    glove, cup = vstar_items(_vstar(tmp_path))
    assert glove.options == tuple(GLOVE["options"])
    assert glove.correct_index == 0
    assert cup.options[0] == "The cup is on the right side of the dog."
    assert cup.options[cup.correct_index] == "The cup is on the left side of the dog."
    assert (glove.category, cup.category) == ("attribute", "spatial")
    assert tuple(glove.target_boxes[0]) == (564, 142, 719, 299)


def test_without_a_questions_file_the_annotation_order_is_official(tmp_path):
    _, cup = vstar_items(_vstar(tmp_path, questions_file=False))
    assert cup.options == tuple(CUP["options"])
    assert cup.correct_index == 0


def test_a_questions_file_that_disagrees_with_an_annotation_is_an_error(tmp_path):
    root = _vstar(tmp_path)
    text = (root / "test_questions.jsonl").read_text().replace("(D) plastic", "(D) wood")
    (root / "test_questions.jsonl").write_text(text)
    with pytest.raises(DatasetError, match="other options"):
        vstar_items(root)


def test_exploratory_folders_only_on_request(tmp_path):
    root = _vstar(tmp_path, ocr=True)
    assert {i.category for i in vstar_items(root)} == {"attribute", "spatial"}
    subsets = ("direct_attributes", "relative_position", "OCR")
    assert "OCR" in {i.category for i in vstar_items(root, subsets)}


def _item(index: int, category: str, n_options: int = 4, cycle: str | None = None) -> EvalItem:
    return EvalItem(
        id=f"{category}/{index}",
        bench="vstar",
        category=category,
        image_path=Path("x.jpg"),
        question="q?",
        options=tuple(f"option {k}" for k in range(n_options)),
        correct_index=index % n_options,
        cycle=cycle,
    )


def test_official_keeps_the_order_and_shuffled_is_seeded_per_item():
    item = _item(1, "attribute")
    assert shown_options(item, "official", 5) == (list(item.options), 1)
    shown, correct = shown_options(item, "shuffled", 0)
    assert shown[correct] == item.options[1]
    assert shown_options(item, "shuffled", 0) == (shown, correct)  # every system sees this
    orders = {tuple(shown_options(item, "shuffled", s)[0]) for s in range(20)}
    assert len(orders) > 5
    # Over many items the correct option lands everywhere, not mostly first.
    positions = Counter(shown_options(_item(i, "a"), "shuffled", 0)[1] for i in range(400))
    assert min(positions.values()) > 60


def test_limit_samples_across_subsets_and_cycles():
    items = [_item(i, "attribute") for i in range(115)] + [
        _item(i, "spatial", 2) for i in range(76)
    ]
    sample = sample_items(items, 40)
    assert Counter(i.category for i in sample) == {"attribute": 20, "spatial": 20}
    assert sample == sorted(sample, key=items.index)  # dataset order kept
    assert sample_items(items, 40) == sample  # the same sample every time
    cycles = [_item(i, "single", cycle=f"c{i % 4}") for i in range(80)]
    assert Counter(i.cycle for i in sample_items(cycles, 8)) == {f"c{k}": 2 for k in range(4)}
    assert sample_items(items, None) == items
    assert run_seeds(3) == [0, 1, 2]
