"""Class fidelity (models/fidelity.py): fashion-cnn's accuracy on images w.r.t. their labels and its IS."""
from __future__ import annotations

import numpy as np
import pytest

import genmetrics
from benchmarks.class_fidelity import class_fidelity
from tests.helpers import fashion_mnist_subset


def test_class_fidelity_of_real_test_images_is_the_classifiers_accuracy_and_is():
    images, labels = (array[:500] for array in fashion_mnist_subset("test"))
    fidelity = class_fidelity(images, labels)
    assert 0.88 <= fidelity.accuracy <= 0.97  # the shipped classifier's test accuracy is 91.7%
    counts = np.bincount(labels, minlength=10)
    assert fidelity.accuracy == pytest.approx((fidelity.per_class * counts).sum() / counts.sum(), rel=1e-12)
    assert fidelity.predicted.sum() == 500 and fidelity.predicted.shape == (10,)
    expected = genmetrics.score(images, metrics="is", extractor="fashion-cnn", progress=False, cache=False)
    assert fidelity.inception_score == pytest.approx(expected.metrics["is_mean"], rel=1e-6)


def test_wrong_labels_give_low_accuracy_and_missing_classes_nan():
    images, labels = (array[:200] for array in fashion_mnist_subset("test"))
    shifted = class_fidelity(images, (labels + 1) % 10)
    assert shifted.accuracy < 0.1
    only_bags = class_fidelity(images[labels == 8], labels[labels == 8])
    assert np.isnan(only_bags.per_class[0]) and only_bags.per_class[8] == only_bags.accuracy
