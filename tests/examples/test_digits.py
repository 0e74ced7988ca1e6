"""The digits example: the hand-drawn nine, the same picture in other guises, and training digits round-trip."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps
from sklearn.model_selection import train_test_split

from examples.digits import train
from legion.model import LoadedModel, Table, load_model
from tests.support.process import run_python

ROOT = Path(__file__).resolve().parents[2]
NINE = ROOT / "examples" / "digits" / "data" / "nine.png"

# Loads a model in a process where the examples are not importable (the apply function and the
# preprocessing it calls must have been pickled by value) and prints the digit it reads in an image file.
FRESH_LOAD = """
import importlib.util, sys
from pathlib import Path
import numpy as np
from legion.model import Table, load_model
assert importlib.util.find_spec("examples") is None, "the examples must not be importable here"
table = Table(("image",), (np.array([Path(sys.argv[2]).read_bytes()], dtype=object),))
print(load_model(sys.argv[1]).endpoint("default").predict(table).arrays[0][0])
"""


def encoded(image: Image.Image, kind: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def read_digits(model: LoadedModel, images: list[bytes]) -> list[int]:
    table = Table(("image",), (np.array(images, dtype=object),))
    answer = model.endpoint("default").predict(table)
    assert isinstance(answer, Table)
    assert answer.columns == ("digit",)
    return [int(digit) for digit in answer.arrays[0]]


def nine_in_other_guises() -> dict[str, bytes]:
    """The same drawing as a user might send it: resized, recompressed, inverted, rotated, transparent..."""
    nine = Image.open(NINE).convert("RGB")
    canvas = Image.new("RGB", (300, 220), "white")
    canvas.paste(nine, (20, 60))
    transparent = Image.new("RGBA", nine.size, (0, 0, 0, 0))
    transparent.putalpha(ImageOps.invert(nine.convert("L")))
    return {
        "small": encoded(nine.resize((40, 40), Image.Resampling.LANCZOS)),
        "large": encoded(nine.resize((400, 400))),
        "jpeg": encoded(nine, "JPEG", quality=70),
        "white on black": encoded(ImageOps.invert(nine)),
        "ink on a transparent layer": encoded(transparent),
        "off centre on a larger canvas": encoded(canvas),
        "rotated left": encoded(nine.rotate(6, fillcolor="white", resample=Image.Resampling.BILINEAR)),
        "rotated right": encoded(nine.rotate(-6, fillcolor="white", resample=Image.Resampling.BILINEAR)),
        "thicker pen": encoded(nine.filter(ImageFilter.MinFilter(5))),
        "thinner pen": encoded(nine.filter(ImageFilter.MaxFilter(3))),
        "drawn wider": encoded(nine.resize((150, 128))),
        "drawn narrower": encoded(nine.resize((100, 128))),
    }


def rendered(cells: np.ndarray, size: int) -> bytes:
    """A training image (0..16, light on dark) upscaled to ``size`` pixels, drawn dark on light."""
    small = Image.fromarray((cells * (255 / 16)).astype(np.uint8))
    return encoded(ImageOps.invert(small.resize((size, size), Image.Resampling.BILINEAR)).convert("RGB"))


@pytest.fixture(scope="module")
def digits(digits_model_dir: Path) -> LoadedModel:
    return load_model(digits_model_dir)


def test_the_hand_drawn_nine_is_a_nine(digits: LoadedModel) -> None:
    table = Table(("image",), (np.array([NINE.read_bytes()], dtype=object),))
    answer = digits.endpoint("default").predict(table)
    assert isinstance(answer, Table)
    assert answer.records() == [{"digit": 9}]


def test_the_nine_in_other_guises_is_still_a_nine(digits: LoadedModel) -> None:
    guises = nine_in_other_guises()
    read = dict(zip(guises, read_digits(digits, list(guises.values())), strict=True))
    assert read == dict.fromkeys(guises, 9)


@pytest.mark.parametrize("size", [24, 64])
def test_held_out_training_digits_drawn_as_pictures_round_trip(digits: LoadedModel, size: int) -> None:
    images, labels = train.load_data()
    _, test_images, _, test_labels = train_test_split(images, labels, test_size=0.25, random_state=0, stratify=labels)
    read = read_digits(digits, [rendered(cells, size) for cells in test_images[:150]])
    assert np.mean(np.array(read) == test_labels[:150]) > 0.93


def test_features_match_the_training_scale() -> None:
    features = train.features_of_image(NINE.read_bytes())
    assert features.shape == (64,)
    assert features.min() >= 0
    assert features.max() == 16
    assert features.mean() == pytest.approx(train.INK_MEAN, abs=0.5)
    cells = features.reshape(8, 8)
    assert cells[0].any()  # the digit spans the full height, as in the training images
    assert cells[-1].any()
    assert not cells[:, 0].any()  # with a margin left and right
    assert not cells[:, -1].any()


def test_a_blank_picture_has_no_ink() -> None:
    blank = encoded(Image.new("L", (32, 32), 255))
    assert not train.features_of_image(blank).any()


def test_held_out_accuracy_is_recorded(digits: LoadedModel) -> None:
    assert digits.manifest.metrics["accuracy"] > 0.97


def test_model_saved_from_an_import_loads_in_a_fresh_process(digits_model_dir: Path, tmp_path: Path) -> None:
    assert run_python("-c", FRESH_LOAD, str(digits_model_dir), str(NINE), cwd=tmp_path).strip() == "9"


def test_script_saves_a_model_that_reads_the_nine(tmp_path: Path) -> None:
    output = tmp_path / "model"
    # ``--version`` is what ``hyperParameters: {version: ...}`` passes; it wins over $LEGION_MODEL_VERSION.
    printed = run_python(
        "examples/digits/train.py", "--output", str(output), "--version", "2.1", cwd=ROOT,
        env={"LEGION_MODEL_VERSION": "2.0"},
    )  # fmt: skip
    assert "held-out accuracy" in printed
    model = load_model(output)
    assert (model.name, model.version) == ("digits", "2.1")
    assert read_digits(model, [NINE.read_bytes()]) == [9]
