"""Deterministic captions of Fashion-MNIST images from their label and three attributes measured from their pixels.

Pixel statistics of a 28x28 uint8 image, with the foreground the pixels brighter than ``FOREGROUND`` (32):

* ``tone``: the mean value of the foreground pixels; **dark** below the class's first tercile, **light** above
  its second, **mid** between.
* ``size``: the number of foreground pixels; **large** above the class's median, **small** otherwise.
* ``pattern``: the mean absolute difference between horizontally or vertically adjacent pixels that are both
  foreground (a texture statistic that ignores the outline); **patterned** above the class's median, **plain**
  otherwise.

The class thresholds (``THRESHOLDS``) were measured on the 60,000 training images (``measure_thresholds``) and are
fixed here, rounded, so captions never depend on which images are being captioned.

A caption fills a template with the class name and attribute words. ``TRAIN_TEMPLATES`` caption the training split;
``HELD_OUT_TEMPLATES`` appear only in evaluation. ``HELD_OUT_COMBOS`` -- (class, attribute, value) -- never appear
in a training caption: a training image with such a combination gets a template without that attribute, so a
model trained on these captions has seen the words but never the composition. The test split's captions use all
templates and all attributes (``captions(..., split="test")``). The template of image ``i`` is drawn once per split
from a seeded generator, so captions are a pure function of (images, labels, split).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from genmetrics.errors import InputError

CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
FOREGROUND = 32
ATTRIBUTES: dict[str, tuple[str, ...]] = {"tone": ("dark", "mid", "light"), "size": ("small", "large"),
                                          "pattern": ("plain", "patterned")}
THRESHOLDS = np.array([  # per class: tone terciles (2), size median, pattern median
    (134.73, 186.25, 421.0, 19.677), (162.18, 193.01, 247.0, 29.604), (135.31, 190.23, 473.0, 21.621),
    (153.93, 195.33, 302.0, 24.651), (168.12, 197.26, 447.0, 23.207), (123.54, 148.37, 186.0, 42.266),
    (119.25, 176.58, 456.5, 21.867), (140.52, 165.95, 216.0, 33.388), (160.92, 187.19, 416.0, 22.721),
    (169.56, 189.70, 333.0, 26.676)])
TRAIN_TEMPLATES = ("a photo of a {cls}", "a photo of a {tone} {cls}", "a {size}, {pattern} {cls}",
                   "a {tone}, {pattern} {cls}", "a photo of a {size} {tone} {cls}", "a {size}, {tone}, {pattern} {cls}")
HELD_OUT_TEMPLATES = ("a picture of a {pattern}, {tone} {cls}", "a {tone} {cls} that is {size} and {pattern}")
HELD_OUT_COMBOS = (("sneaker", "tone", "dark"), ("trouser", "tone", "light"), ("bag", "size", "small"),
                   ("pullover", "pattern", "patterned"))
SEEDS = {"train": 1, "test": 2}


def _gray(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise InputError(f"Fashion-MNIST captions need (N, 28, 28[, 1]) uint8 images, got {images.shape} "
                         f"{images.dtype}")
    return images


def pixel_statistics(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28[, 1]) uint8 -> (N, 3) float64: tone (mean foreground value), size (foreground pixel count) and
    pattern (mean |difference| of adjacent foreground pixels), as defined in the module docstring."""
    gray = _gray(images)
    fg = gray > FOREGROUND
    values = gray.astype(np.float64)
    count = fg.sum((1, 2))
    tone = (values * fg).sum((1, 2)) / np.maximum(count, 1)
    horizontal, vertical = fg[:, :, 1:] & fg[:, :, :-1], fg[:, 1:, :] & fg[:, :-1, :]
    diffs = (np.abs(np.diff(values, axis=2)) * horizontal).sum((1, 2)) + \
        (np.abs(np.diff(values, axis=1)) * vertical).sum((1, 2))
    pattern = diffs / np.maximum(horizontal.sum((1, 2)) + vertical.sum((1, 2)), 1)
    return np.stack([tone, count.astype(np.float64), pattern], axis=1)


def measure_thresholds(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(10, 4) per-class thresholds of ``pixel_statistics``: tone terciles, size and pattern medians (unrounded)."""
    stats, labels = pixel_statistics(images), np.asarray(labels)
    rows = []
    for c in range(len(CLASS_NAMES)):
        s = stats[labels == c]
        rows.append((*np.quantile(s[:, 0], [1 / 3, 2 / 3]), np.median(s[:, 1]), np.median(s[:, 2])))
    return np.array(rows)


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or \
            (n and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES))):
        raise InputError(f"Fashion-MNIST captions need {n} integer labels in 0..9, got shape {labels.shape}")
    return labels.astype(np.int64)


def attributes(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Attribute value indices (into ``ATTRIBUTES[name]``) of each image: {"tone", "size", "pattern"} -> (N,) int64,
    from ``pixel_statistics`` and the thresholds of each image's class."""
    stats = pixel_statistics(images)
    t = THRESHOLDS[_check_labels(labels, len(stats))]
    tone = (stats[:, 0] >= t[:, 0]).astype(np.int64) + (stats[:, 0] > t[:, 1])
    return {"tone": tone, "size": (stats[:, 1] > t[:, 2]).astype(np.int64),
            "pattern": (stats[:, 2] > t[:, 3]).astype(np.int64)}


def attribute_words(found: dict[str, np.ndarray], i: int) -> dict[str, str]:
    """The words of image ``i``'s attributes (name -> word) from ``attributes``' value indices."""
    return {name: ATTRIBUTES[name][found[name][i]] for name in ATTRIBUTES}


def fill(template: str, label: int, values: dict[str, str]) -> str:
    """``template`` with ``{cls}`` the class name and ``{tone}``/``{size}``/``{pattern}`` words from ``values``;
    the article "a" before a vowel becomes "an" ("a photo of an ankle boot")."""
    return re.sub(r"\ba (?=[aeiou])", "an ", template.format(cls=CLASS_NAMES[label], **values))


def template_attributes(template: str) -> tuple[str, ...]:
    """The attribute names a template mentions, in ``ATTRIBUTES`` order."""
    found = set(re.findall(r"{(\w+)}", template))
    return tuple(name for name in ATTRIBUTES if name in found)


def _check_split(split: str) -> str:
    if split not in SEEDS:
        raise InputError(f"caption split must be 'train' or 'test', got {split!r}")
    return split


def _is_held_out(label: int, name: str, word: str) -> bool:
    return (CLASS_NAMES[label], name, word) in HELD_OUT_COMBOS


def _held_out(label: int, words: dict[str, str]) -> set[str]:
    """The attributes of an image with ``label`` and attribute ``words`` that form a held-out combination."""
    return {name for name, word in words.items() if _is_held_out(label, name, word)}


def allowed_templates(label: int, words: dict[str, str], split: str = "train") -> tuple[str, ...]:
    """The templates that may caption an image of class ``label`` with attribute ``words`` (name -> word) in
    ``split``: "train" the TRAIN_TEMPLATES that state no held-out combination of the image, "test" all."""
    if _check_split(split) == "test":
        return TRAIN_TEMPLATES + HELD_OUT_TEMPLATES
    banned = _held_out(label, words)
    return tuple(t for t in TRAIN_TEMPLATES if not banned & set(template_attributes(t)))


@dataclass(frozen=True)
class Caption:
    """One caption and what it states: the class, and the attribute values it mentions (name -> word)."""

    text: str
    label: int
    stated: dict[str, str]


def caption_records(images: np.ndarray, labels: np.ndarray, split: str = "train") -> list[Caption]:
    """The caption of every image (see the module docstring); ``split`` "train" uses ``TRAIN_TEMPLATES`` without
    held-out combinations, "test" all templates and attributes."""
    _check_split(split)
    found = attributes(images, labels)
    labels = _check_labels(labels, len(found["tone"]))
    draws = np.random.default_rng(SEEDS[split]).integers(0, 2 ** 31, size=len(labels))
    out = []
    for i, label in enumerate(labels.tolist()):
        words = attribute_words(found, i)
        allowed = allowed_templates(label, words, split)
        template = allowed[draws[i] % len(allowed)]
        stated = {name: words[name] for name in template_attributes(template)}
        out.append(Caption(fill(template, label, words), label, stated))
    return out


def captions(images: np.ndarray, labels: np.ndarray, split: str = "train") -> list[str]:
    """The caption texts of ``caption_records``."""
    return [record.text for record in caption_records(images, labels, split)]


def class_prompt(label: int) -> str:
    """The zero-shot prompt of a class: "a photo of a {class}"."""
    return fill(TRAIN_TEMPLATES[0], label, {})


@dataclass(frozen=True)
class Prompt:
    """A prompt of the evaluation suite: its text, the class and attribute words it asks for, and its category."""

    text: str
    label: int
    stated: dict[str, str]
    category: str  # "class", "attribute", "held-out combination" or "held-out template"


def _suite_prompt(template: str, label: int, words: dict[str, str], category: str) -> Prompt:
    stated = {name: words[name] for name in template_attributes(template)}
    return Prompt(fill(template, label, words), label, stated, category)


def prompt_suite() -> list[Prompt]:
    """The text-to-image prompt suite (in the spirit of DrawBench, for this domain), 90 prompts:

    * class (10): "a photo of a {class}";
    * attribute (64): "a photo of a {tone} {class}" for every tone, "a {size}, {pattern} {class}" for every size
      and pattern, leaving out the held-out combinations;
    * held-out combination (6): each (class, attribute, value) of ``HELD_OUT_COMBOS`` in a training template;
    * held-out template (10): "a picture of a {pattern}, {tone} {class}" (a template never trained on), one per
      class, with the class's values cycling through the attributes.
    """
    suite = [_suite_prompt(TRAIN_TEMPLATES[0], c, {}, "class") for c in range(len(CLASS_NAMES))]
    for c in range(len(CLASS_NAMES)):
        for tone in ATTRIBUTES["tone"]:
            if not _is_held_out(c, "tone", tone):
                suite.append(_suite_prompt(TRAIN_TEMPLATES[1], c, {"tone": tone}, "attribute"))
        for size in ATTRIBUTES["size"]:
            for pattern in ATTRIBUTES["pattern"]:
                if not _held_out(c, {"size": size, "pattern": pattern}):
                    suite.append(_suite_prompt(TRAIN_TEMPLATES[2], c, {"size": size, "pattern": pattern},
                                               "attribute"))
    for cls, name, value in HELD_OUT_COMBOS:
        c = CLASS_NAMES.index(cls)
        if name == "tone":
            suite.append(_suite_prompt(TRAIN_TEMPLATES[1], c, {"tone": value}, "held-out combination"))
        else:
            other = "pattern" if name == "size" else "size"
            for word in ATTRIBUTES[other]:
                suite.append(_suite_prompt(TRAIN_TEMPLATES[2], c, {name: value, other: word}, "held-out combination"))
    for c in range(len(CLASS_NAMES)):
        words = {name: values[c % len(values)] for name, values in ATTRIBUTES.items()}
        suite.append(_suite_prompt(HELD_OUT_TEMPLATES[0], c, words, "held-out template"))
    return suite
