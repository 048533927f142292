"""Fashion-MNIST captions: known pixel statistics of synthetic images, per-class thresholds and their boundaries,
determinism, what the training split never says, and bad inputs."""
from __future__ import annotations

import re

import numpy as np
import pytest

from genmetrics.errors import InputError
from genmetrics.io import fashion_captions as fc
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels
from tests.helpers import fashion_mnist_subset

TSHIRT, TROUSER, SANDAL = 0, 1, 5


def _square(value: int, side: int, background: int = 0) -> np.ndarray:
    """One (28, 28) uint8 image: a ``side`` x ``side`` square of ``value`` at (2, 2) on ``background``."""
    image = np.full((28, 28), background, np.uint8)
    image[2:2 + side, 2:2 + side] = value
    return image


def _checkerboard(low: int, high: int, side: int) -> np.ndarray:
    """A ``side`` x ``side`` checkerboard of ``low``/``high`` (both foreground) at (2, 2) on black."""
    image = np.zeros((28, 28), np.uint8)
    rows, cols = np.indices((side, side))
    image[2:2 + side, 2:2 + side] = np.where((rows + cols) % 2, high, low)
    return image


def _tone_square(pixels: dict[int, int]) -> np.ndarray:
    """A 10x10 foreground square whose pixels take the values of ``pixels`` (value -> count, 100 in all)."""
    values = np.repeat(list(pixels), list(pixels.values())).astype(np.uint8)
    image = np.zeros((28, 28), np.uint8)
    image[2:12, 2:12] = values.reshape(10, 10)
    return image


def _template_of(record: fc.Caption, templates: tuple[str, ...]) -> list[str]:
    """The templates among ``templates`` that give ``record``'s text from its class and stated words."""
    return [t for t in templates if set(fc.template_attributes(t)) == set(record.stated)
            and fc.fill(t, record.label, record.stated) == record.text]


@pytest.mark.parametrize("value, side, background", [(200, 10, 0), (33, 5, 32), (255, 26, 0), (90, 1, 17)])
def test_a_uniform_square_has_tone_v_size_s_squared_and_no_pattern(value, side, background):
    stats = fc.pixel_statistics(_square(value, side, background)[None])
    np.testing.assert_array_equal(stats, [[value, side * side, 0.0]])


def test_a_checkerboard_has_pattern_equal_to_its_step_and_the_outline_does_not_count():
    stats = fc.pixel_statistics(np.stack([_checkerboard(100, 140, 8), _checkerboard(60, 61, 7)]))
    np.testing.assert_allclose(stats[0], [120.0, 64, 40.0])  # even side: half of each value
    np.testing.assert_allclose(stats[1], [(25 * 60 + 24 * 61) / 49, 49, 1.0])
    np.testing.assert_array_equal(fc.pixel_statistics(np.zeros((1, 28, 28, 1), np.uint8)), [[0, 0, 0]])


def test_thresholds_apply_per_class():
    images = np.stack([_square(150, 20)] * 3)  # tone 150, size 400
    found = fc.attributes(images, np.array([TSHIRT, TROUSER, SANDAL]))
    assert [fc.ATTRIBUTES["tone"][v] for v in found["tone"]] == ["mid", "dark", "light"]
    assert [fc.ATTRIBUTES["size"][v] for v in found["size"]] == ["small", "large", "large"]
    assert found["pattern"].tolist() == [0, 0, 0]


def test_tone_exactly_at_a_tercile_is_mid():
    first, second = fc.THRESHOLDS[TSHIRT, :2]
    assert (first, second) == (134.73, 186.25)
    images = np.stack([_tone_square({135: 73, 134: 27}), _tone_square({187: 25, 186: 75}),  # sums 13473, 18625
                       _tone_square({135: 72, 134: 28}), _tone_square({187: 26, 186: 74})])
    np.testing.assert_array_equal(fc.pixel_statistics(images)[:2, 0], [first, second])
    tone = fc.attributes(images, np.full(4, TSHIRT))["tone"]
    assert [fc.ATTRIBUTES["tone"][v] for v in tone] == ["mid", "mid", "dark", "light"]


def test_size_equal_to_the_median_is_small():
    assert fc.THRESHOLDS[TROUSER, 2] == 247.0
    images = np.zeros((2, 28, 28), np.uint8)
    images[:, 1:14, 1:20] = 200  # 13 x 19 = 247 pixels
    images[1, 20, 20] = 200  # 248
    size = fc.attributes(images, np.full(2, TROUSER))["size"]
    assert [fc.ATTRIBUTES["size"][v] for v in size] == ["small", "large"]


def test_pattern_equal_to_the_median_is_plain(monkeypatch):
    thresholds = fc.THRESHOLDS.copy()
    thresholds[SANDAL, 3] = 20.0
    monkeypatch.setattr(fc, "THRESHOLDS", thresholds)
    images = np.stack([_checkerboard(100, 120, 6), _checkerboard(100, 121, 6)])
    assert fc.attributes(images, np.full(2, SANDAL))["pattern"].tolist() == [0, 1]


def test_captions_are_a_pure_function_of_images_labels_and_split():
    images, labels = fashion_mnist_subset("test")
    first = {split: fc.caption_records(images, labels, split) for split in ("test", "train")}
    np.random.seed(123)  # global numpy state plays no part
    again = {split: fc.caption_records(images, labels, split) for split in ("train", "test")}
    assert first == again
    assert fc.captions(images, labels, "test") == [r.text for r in first["test"]]
    assert fc.captions(images[..., None], labels.astype(np.int32), "test") == [r.text for r in first["test"]]


def test_attributes_do_not_depend_on_the_batch_and_captions_of_a_prefix_are_a_prefix():
    """Thresholds are fixed, so an image's attributes are its own whatever it is captioned with; templates are a
    seeded stream drawn by index within the call, so the first n images get the same captions alone."""
    images, labels = fashion_mnist_subset("test")
    whole = fc.attributes(images, labels)
    for start, stop in ((0, 1), (0, 700), (700, 2000), (1234, 1300)):
        part = fc.attributes(images[start:stop], labels[start:stop])
        assert all(np.array_equal(part[name], whole[name][start:stop]) for name in fc.ATTRIBUTES)
    for split in ("train", "test"):
        records = fc.caption_records(images, labels, split)
        for n in (1, 37, 700):
            assert fc.caption_records(images[:n], labels[:n], split) == records[:n]


def test_the_training_split_never_says_a_held_out_template_or_combination():
    images, labels = fashion_mnist_subset("test")
    found = fc.attributes(images, labels)
    combos = [(fc.CLASS_NAMES.index(c), name, value) for c, name, value in fc.HELD_OUT_COMBOS]
    for label, name, value in combos:  # the subset has images of every held-out combination
        assert ((labels == label) & (found[name] == fc.ATTRIBUTES[name].index(value))).sum() > 20
    for i, record in enumerate(fc.caption_records(images, labels, "train")):
        assert record.label == labels[i]
        assert all(fc.ATTRIBUTES[name][found[name][i]] == word for name, word in record.stated.items())
        assert len(_template_of(record, fc.TRAIN_TEMPLATES)) == 1
        assert not _template_of(record, fc.HELD_OUT_TEMPLATES)
        for label, name, value in combos:
            assert not (record.label == label and record.stated.get(name) == value)
            assert not (fc.CLASS_NAMES[label] in record.text and re.search(rf"\b{value}\b", record.text)), record


def test_the_test_split_uses_every_template_and_states_held_out_combinations():
    images, labels = fashion_mnist_subset("test")
    records = fc.caption_records(images, labels, "test")
    everything = fc.TRAIN_TEMPLATES + fc.HELD_OUT_TEMPLATES
    used = [_template_of(record, everything) for record in records]
    assert all(len(found) == 1 for found in used)
    assert {found[0] for found in used} == set(everything)
    stated = {(fc.CLASS_NAMES[r.label], name, word) for r in records for name, word in r.stated.items()}
    assert set(fc.HELD_OUT_COMBOS) <= stated


@pytest.mark.parametrize("images, labels, split, message", [
    (np.zeros((28, 28), np.uint8), np.zeros(28, np.int64), "test", r"\(N, 28, 28\[, 1\]\) uint8 images, got \(28,"),
    (np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.int64), "test", r"got \(2, 32, 32\) uint8"),
    (np.zeros((2, 28, 28, 3), np.uint8), np.zeros(2, np.int64), "test", r"got \(2, 28, 28, 3\)"),
    (np.zeros((2, 28, 28), np.float32), np.zeros(2, np.int64), "test", "float32"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0, 10]), "test", "2 integer labels in 0..9"),
    (np.zeros((2, 28, 28), np.uint8), np.array([-1, 0]), "test", "2 integer labels in 0..9"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0, 1, 2]), "test", r"got shape \(3,\)"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0.0, 1.0]), "test", "integer labels"),
    (np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.int64), "val", "split must be 'train' or 'test', got 'val'"),
])
def test_bad_inputs_are_input_errors(images, labels, split, message):
    with pytest.raises(InputError, match=message):
        fc.caption_records(images, labels, split)


@pytest.mark.fashion_mnist_full
def test_measured_thresholds_of_the_training_split_are_the_fixed_ones():
    measured = fc.measure_thresholds(fashion_mnist("train"), fashion_mnist_labels("train"))
    np.testing.assert_allclose(measured, fc.THRESHOLDS, rtol=0, atol=0.006)
