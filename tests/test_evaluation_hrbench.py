"""HR-Bench's published TSV layout: loading, and accuracy per cycle then averaged."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from seal_agent.evaluation import DatasetError, ItemRecord, Prediction, load_hrbench
from seal_agent.evaluation.metrics import accuracy_columns

#: The header of hr_bench_4k.tsv / hr_bench_8k.tsv (VLMEvalKit's MCQ layout).
HEADER = "index\tquestion\tanswer\tcategory\tA\tB\tC\tD\timage\tcycle_category"


def _image_b64(size: tuple[int, int] = (64, 48), colour=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _official_like_rows(image: str) -> list[str]:
    """Rows written as the published file has them: an FSP question asked in two cycles
    (options rotated, the answer letter following), the second row naming the first
    row's index instead of repeating the image, and an FCP question."""
    return [
        "0\tWhat is the color of the umbrella?\tB\tsingle\tblack\tred\tblue\tgreen\t"
        f"{image}\tcycle_1",
        "1\tWhat is the color of the umbrella?\tA\tsingle\tred\tblue\tgreen\tblack\t0\tcycle_2",
        "2\tIs the bus on the left or right side of the tree?\tA\tcross\t"
        "The bus is on the left side of the tree.\tThe bus is on the right side of the tree."
        f"\t\t\t{image}\tcycle_1",
    ]


def _write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_the_published_layout_loads_options_in_order_with_the_letter_as_answer(tmp_path):
    tsv = _write(tmp_path / "hr_bench_4k.tsv", _official_like_rows(_image_b64()))
    items = load_hrbench(tsv, cache_dir=tmp_path / "cache")
    assert [i.id for i in items] == ["0", "1", "2"]
    first, second, cross = items
    assert first.options == ("black", "red", "blue", "green")
    assert first.options[first.correct_index] == "red"
    assert second.options[second.correct_index] == "red"
    assert (first.category, first.cycle, second.cycle) == ("single", "cycle_1", "cycle_2")
    assert cross.category == "cross"
    assert len(cross.options) == 2  # empty C / D columns are not options
    assert cross.correct_index == 0
    # Decoded once into the image cache; the row naming index 0 shares that file.
    assert first.image_path == second.image_path
    assert first.image_path.is_relative_to(tmp_path / "cache")
    assert Image.open(first.image_path).size == (64, 48)


def test_quoted_fields_are_read_as_pandas_writes_them(tmp_path):
    image = _image_b64()
    row = f'0\t"What does the sign say: ""STOP"" or ""GO""?"\tA\tsingle\tSTOP\tGO\t\t\t{image}\tc1'
    items = load_hrbench(_write(tmp_path / "q.tsv", [row]), cache_dir=tmp_path / "c")
    assert items[0].question == 'What does the sign say: "STOP" or "GO"?'


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["0\tq?\tE\tsingle\ta\tb\tc\td\t{img}\tc1"], HEADER, "answer 'E'"),
        (["0\tq?\tC\tcross\ta\tb\t\t\t{img}\tc1"], HEADER, "answer 'C'"),
        (["0\tq?\tA\tsingle\ta\tb\tc\td\t7\tc1"], HEADER, "earlier index"),
        (["0\tq?\tA\tsingle\ta\tb\tc\td\t" + "!" * 80 + "\tc1"], HEADER, "base64"),
        (["0\tq?\tA\tsingle\ta\tb"], "index\tquestion\tanswer\tcategory\tA\tB", "cycle_category"),
        (
            ["0\tq?\tA\tsingle\ta\tb\t\t\t{img}\tc1", "0\tq?\tA\tsingle\ta\tb\t\t\t0\tc2"],
            HEADER,
            "repeats",
        ),
    ],
)
def test_malformed_files_are_named(tmp_path, rows, header, message):
    rows = [r.replace("{img}", _image_b64()) for r in rows]
    with pytest.raises(DatasetError, match=message):
        load_hrbench(_write(tmp_path / "bad.tsv", rows, header), cache_dir=tmp_path / "c")


def test_images_go_through_the_same_pixel_limit_as_any_input(tmp_path):
    rows = _official_like_rows(_image_b64((300, 200)))
    with pytest.raises(DatasetError, match="row index '0'"):
        load_hrbench(_write(tmp_path / "big.tsv", rows), cache_dir=tmp_path / "c", max_pixels=1000)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_hrbench(tmp_path / "nope.tsv")


def _record(item_id: str, category: str, cycle: str, correct: bool) -> ItemRecord:
    return ItemRecord(
        system="s",
        seed=0,
        item_id=item_id,
        category=category,
        cycle=cycle,
        shown_options=["a", "b"],
        correct_index=0,
        prediction=Prediction(choice=0 if correct else 1),
        correct=correct,
        elapsed_s=0.0,
    )


def test_accuracy_is_computed_per_cycle_then_averaged_as_the_authors_do():
    records = [
        # cycle 1: FSP 1/2, FCP 1/1, all 2/3
        _record("0", "single", "c1", True),
        _record("1", "single", "c1", False),
        _record("2", "cross", "c1", True),
        # cycle 2: FSP 1/1, FCP 0/1, all 1/2
        _record("3", "single", "c2", True),
        _record("4", "cross", "c2", False),
    ]
    columns = accuracy_columns(records, "hrbench")
    assert columns["FSP"] == pytest.approx((50.0 + 100.0) / 2)
    assert columns["FCP"] == pytest.approx((100.0 + 0.0) / 2)
    assert columns["overall"] == pytest.approx((200 / 3 + 50.0) / 2)  # not 3/5 = 60 %
