"""Rebuild the shipped statistics, demo images and captions in data_stats/ from Debian's dataset-fashion-mnist and
scikit-learn's digits.

    python data_stats/build.py            # everything listed in ENTRIES
    python data_stats/build.py KEY ...    # only these (file stems: digits, fashion-mnist-test.fashion-cnn,
                                          # fashion-mnist-test.captions, ...)

Each entry is deterministic (fixed seeds), so a rebuild reproduces the files bit for bit on the same
library versions; index.json records every file's sha256.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

import genmetrics
from genmetrics.io.atomic import atomic_write
from genmetrics.io.fashion_captions import caption_records
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels
from genmetrics.io.statsfile import save_stats

HERE = Path(__file__).resolve().parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_demo_images() -> dict:
    """The generated side of the embedded demo: the first 300 Fashion-MNIST test images."""
    images = fashion_mnist("test")[:300]
    out = HERE / "demo" / "fashion-mnist-test-300.npy"
    out.parent.mkdir(exist_ok=True)
    with atomic_write(out) as handle:
        np.save(handle, images, allow_pickle=False)
    return {"name": "demo-fashion-mnist-test-300", "file": "demo/fashion-mnist-test-300.npy",
            "source": "Fashion-MNIST test images 0..299 (Debian dataset-fashion-mnist)", "n": 300}


FEATURE_SUBSET = 10_000  # reference features kept for precision/recall and KID, float16


def build_reference(name: str, images: np.ndarray, source: str, out_dir: Path = HERE,
                    extractor: str = "inception") -> dict:
    """Stats of all ``images`` (``extractor`` with its default preprocessing, fp32) plus float16 features of a
    seeded subset of at most FEATURE_SUBSET of them, written to ``out_dir/NAME.npz`` (``NAME.EXTRACTOR.npz``
    for another extractor than inception); returns its index.json entry."""
    stats = genmetrics.compute_stats(images, features=True, batch_size=50, extractor=extractor)
    n = stats.n
    rows = (np.arange(n) if n <= FEATURE_SUBSET
            else np.sort(np.random.default_rng(0).choice(n, FEATURE_SUBSET, replace=False)))
    subset = {"n": len(rows), "of": n, "dtype": "float16",
              "rows": "all" if len(rows) == n else f"numpy default_rng(0).choice({n}, {FEATURE_SUBSET}, replace=False), sorted"}
    stats = dataclasses.replace(stats, features=stats.features[rows].astype(np.float16),
                                meta={**stats.meta, "source": source, "features_subset": subset})
    out = out_dir / (f"{name}.npz" if extractor == "inception" else f"{name}.{extractor}.npz")
    save_stats(out, stats)
    return {"name": name, "file": out.name, "source": source, "n": n, "extractor": stats.extractor.name,
            "weights_sha256": stats.extractor.weights_sha256, "resize": stats.extractor.resize,
            "image_size": stats.extractor.image_size, "precision": stats.extractor.precision,
            "features": len(rows)}


def digits_images() -> np.ndarray:
    """scikit-learn's 1,797 8x8 digits as uint8 (N, 8, 8): round(v * 255 / 16); the extractor upscales them."""
    from sklearn.datasets import load_digits

    return np.round(load_digits().images * (255 / 16)).astype(np.uint8)


def build_digits(out_dir: Path = HERE) -> dict:
    return build_reference("digits", digits_images(),
                           "scikit-learn load_digits(): 1,797 8x8 images, uint8 = round(v * 255 / 16)", out_dir)


def build_fashion_mnist(split: str, extractor: str = "inception") -> dict:
    images = fashion_mnist(split)
    return build_reference(f"fashion-mnist-{split}", images,
                           f"Fashion-MNIST {split} split, all {len(images):,} images (Debian dataset-fashion-mnist)",
                           extractor=extractor)


def captions_csv(images: np.ndarray, labels: np.ndarray, split: str) -> bytes:
    """The captions CSV of ``images``: header ``file,caption``, then one row per image in order, ``file`` its index
    ("0", "1", ...) and the caption of ``caption_records(images, labels, split)``; UTF-8, "\\n" line ends."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "caption"])
    writer.writerows((str(i), record.text) for i, record in enumerate(caption_records(images, labels, split)))
    return text.getvalue().encode("utf-8")


def build_test_captions(out_dir: Path = HERE) -> dict:
    """The captions of the 10,000 Fashion-MNIST test images (genmetrics.io.fashion_captions, split "test"), matched
    by index to an array of the test images (``genmetrics clipscore TEST.npy data_stats/...captions.csv``)."""
    images = fashion_mnist("test")
    out = out_dir / "fashion-mnist-test.captions.csv"
    with atomic_write(out) as handle:
        handle.write(captions_csv(images, fashion_mnist_labels("test"), "test"))
    return {"name": "fashion-mnist-test-captions", "file": out.name,
            "source": "genmetrics.io.fashion_captions.caption_records(images, labels, 'test') of the Fashion-MNIST "
                      "test split (Debian dataset-fashion-mnist); file = the image's index", "n": len(images)}


# index.json section -> {file stem: builder}; "references" are stats files resolvable by name (one name may
# have a file per extractor), "demo" the generated side of `genmetrics score` without arguments, "captions" captions
# files of a split's images.
ENTRIES = {
    "demo": {"fashion-mnist-test-300": build_demo_images},
    "references": {
        "digits": build_digits,
        "fashion-mnist-test": lambda: build_fashion_mnist("test"),
        "fashion-mnist-train": lambda: build_fashion_mnist("train"),
        "fashion-mnist-test.fashion-cnn": lambda: build_fashion_mnist("test", "fashion-cnn"),
        "fashion-mnist-train.fashion-cnn": lambda: build_fashion_mnist("train", "fashion-cnn"),
    },
    "captions": {"fashion-mnist-test.captions": build_test_captions},
}


def main(names: list[str]) -> None:
    index_path = HERE / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for section, builders in ENTRIES.items():
        entries = {Path(e["file"]).stem: e for e in index.get(section, [])}
        for key, build in builders.items():
            if names and key not in names:
                continue
            entry = build()
            entry["sha256"] = sha256(HERE / entry["file"])
            entries[key] = entry
            index[section] = list(entries.values())
            with atomic_write(index_path) as handle:  # after each entry: a long build keeps what it finished
                handle.write((json.dumps(index, indent=2) + "\n").encode())
            print(f"built {key}: {entry['file']} sha256 {entry['sha256']}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
