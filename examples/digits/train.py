"""Digit recognition: an image endpoint trained on scikit-learn's bundled 8x8 digits (nothing is downloaded).

Run it as ``python examples/digits/train.py [--output DIR] [--version V]`` (the version defaults to
``$LEGION_MODEL_VERSION``, the ``model.version`` of a ModelTraining that runs it, else 1.0); the tests import it
as a module too. The model
takes one ``image`` column of encoded image bytes (PNG, JPEG, ...) and answers the ``digit`` it sees, e.g. 9
for ``data/nine.png``, a 9 drawn by hand in black on white.

The training images are 8x8 grids that count ink from 0 to 16, light ink on a dark ground. Measured on the
data set: every digit spans the full height and is centred across; the ink's horizontal spread (standard
deviation, in cells) is 1.05-1.45 for 80 % of them; every class holds about the same ink, 4.9 per cell on
average. ``features_of_image`` brings any picture to those terms: grayscale, ink made light on dark, cropped
to the ink, narrowed if its spread is wider than the training digits', centred in a square (the margin falls
left and right), shrunk by area averaging to 8x8 and scaled to the training ink. A hand-drawn digit is
usually rounder than the data set's, which is why the narrowing matters: without it ``nine.png`` reads as 5.
"""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

import legion.model

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "build" / "model"
DEFAULT_VERSION = "1.0"
VERSION_HELP = "model version to save (default: $LEGION_MODEL_VERSION, a ModelTraining's model.version; else 1.0)"
SIDE = 8  # the training images are SIDE x SIDE cells
MAX_INK = 16.0  # a cell full of ink
INK_MEAN = 4.9  # mean cell of the training images, the same for every class (4.7 to 5.2)
MAX_SPREAD = 1.35  # horizontal standard deviation of the ink in cells; 1.26 is the training median
INK_LEVEL = 0.25  # a pixel with this share of full ink counts as ink when cropping


def load_data() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: images ``(n, 8, 8)`` with values 0..16, and their labels."""
    digits = load_digits()
    return digits.images, digits.target


def train(images: np.ndarray, labels: np.ndarray) -> SVC:
    """An RBF support-vector classifier on the 64 cells of each image; well under a second."""
    return SVC(gamma=0.001, C=10.0).fit(images.reshape(len(images), -1), labels)


def evaluate(model: SVC, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of ``model`` on images it was not trained on."""
    return float(accuracy_score(labels, model.predict(images.reshape(len(images), -1))))


def features_of_image(data: bytes) -> np.ndarray:
    """An encoded image as the 64 cells the classifier was trained on."""
    with Image.open(io.BytesIO(data)) as image:
        return features_of_ink(_ink(_grayscale(image)))


def features_of_ink(ink: np.ndarray) -> np.ndarray:
    """A 2-D array of ink (0 none .. 1 full) as 64 cells like the training images'."""
    if ink.max() <= 0:
        return np.zeros(SIDE * SIDE)
    ink = _crop(ink)
    narrowed = _narrow(Image.fromarray(ink.astype(np.float32)), _spread(ink))
    small = _square(narrowed).resize((SIDE, SIDE), Image.Resampling.BOX)
    cells = np.asarray(small, dtype=np.float64)
    return np.clip(cells * (INK_MEAN / cells.mean()), 0.0, MAX_INK).reshape(-1)


def _grayscale(image: Image.Image) -> np.ndarray:
    """Gray levels 0..255 of the upright image; a transparent background counts as white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.float64)


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink 0..1 on a dark ground: the levels are stretched, and inverted when the border is light."""
    low, high = gray.min(), gray.max()
    if high - low < 1:
        return np.zeros_like(gray)
    ink = (gray - low) / (high - low)
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    return 1.0 - ink if np.median(border) > 0.5 else ink


def _crop(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero((ink >= INK_LEVEL).any(axis=1))
    columns = np.flatnonzero((ink >= INK_LEVEL).any(axis=0))
    return ink[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def _spread(ink: np.ndarray) -> float:
    """Horizontal standard deviation of the ink, in cells of an image whose height is SIDE cells."""
    mass = ink.sum(axis=0)
    x = np.arange(ink.shape[1])
    mean = (mass * x).sum() / mass.sum()
    deviation = np.sqrt((mass * (x - mean) ** 2).sum() / mass.sum())
    return float(deviation * SIDE / ink.shape[0])


def _narrow(image: Image.Image, spread: float) -> Image.Image:
    if spread <= MAX_SPREAD:
        return image
    width = max(1, round(image.width * MAX_SPREAD / spread))
    return image.resize((width, image.height), Image.Resampling.BOX)


def _square(image: Image.Image) -> Image.Image:
    """``image`` centred on a blank square as wide as its longer side."""
    side = max(image.size)
    square = Image.new("F", (side, side), 0.0)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def apply_function(model: SVC) -> Callable[[pd.DataFrame], dict[str, np.ndarray]]:
    """The endpoint's function: ``df["image"]`` (encoded bytes) -> ``{"digit": ...}``, one per row."""

    def apply_func(df: pd.DataFrame) -> dict[str, np.ndarray]:
        features = np.stack([features_of_image(bytes(data)) for data in df["image"]])
        return {"digit": model.predict(features).astype(np.int64)}

    return apply_func


def export(model: SVC, output: Path, accuracy: float | None = None, version: str = DEFAULT_VERSION) -> Path:
    """Save ``model`` as the ``digits`` model: one ``image`` column in, ``digit`` out."""
    legion.model.init("digits", version)
    legion.model.export(apply_function(model), {"image": "image"})
    if accuracy is not None:
        legion.model.send_metric("accuracy", accuracy)
    return legion.model.save(output)


def main(argv: list[str] | None = None) -> Path:
    """Train on 75 % of the digits, measure on the rest, save the model; returns where it was saved."""
    parser = argparse.ArgumentParser(description="Train and save the digit recognition model.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="model directory or .zip to write")
    parser.add_argument("--version", default=None, help=VERSION_HELP)
    args = parser.parse_args(argv)
    version = args.version or os.environ.get("LEGION_MODEL_VERSION") or DEFAULT_VERSION
    images, labels = load_data()
    train_images, test_images, train_labels, test_labels = train_test_split(
        images, labels, test_size=0.25, random_state=0, stratify=labels
    )
    model = train(train_images, train_labels)
    accuracy = evaluate(model, test_images, test_labels)
    saved = export(model, args.output, accuracy=accuracy, version=version)
    print(f"held-out accuracy {accuracy:.4f}; saved {saved}")
    return saved


if __name__ == "__main__":
    main()
