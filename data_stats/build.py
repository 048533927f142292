"""Rebuild the shipped statistics and demo images in data_stats/ from Debian's dataset-fashion-mnist.

    python data_stats/build.py            # everything listed in ENTRIES
    python data_stats/build.py NAME ...   # only these

Each entry is deterministic (fixed seeds), so a rebuild reproduces the files bit for bit on the same
library versions; index.json records every file's sha256.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import genmetrics
from genmetrics.io.atomic import atomic_write
from genmetrics.io.idx import fashion_mnist

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


def build_train_2500() -> dict:
    """Reference statistics with features of 2,500 Fashion-MNIST training images (seeded choice)."""
    train = fashion_mnist("train")
    index = np.sort(np.random.default_rng(0).choice(len(train), 2500, replace=False))
    out = HERE / "fashion-mnist-train-2500.npz"
    stats = genmetrics.compute_stats(train[index], out, features=True, batch_size=50)
    return {"name": "fashion-mnist-train-2500", "file": out.name,
            "source": "2,500 Fashion-MNIST training images, numpy default_rng(0) choice without replacement",
            "n": stats.n, "extractor": stats.extractor.name, "weights_sha256": stats.extractor.weights_sha256,
            "resize": stats.extractor.resize, "features": True}


# index.json section -> {name: builder}; "references" are stats files resolvable by name, "demo" the
# generated side of `genmetrics score` without arguments.
ENTRIES = {
    "demo": {"demo-fashion-mnist-test-300": build_demo_images},
    "references": {"fashion-mnist-train-2500": build_train_2500},
}


def main(names: list[str]) -> None:
    index_path = HERE / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for section, builders in ENTRIES.items():
        entries = {e["name"]: e for e in index.get(section, [])}
        for name, build in builders.items():
            if names and name not in names:
                continue
            entry = build()
            entry["sha256"] = sha256(HERE / entry["file"])
            entries[name] = entry
            print(f"built {name}: {entry['file']} sha256 {entry['sha256']}", file=sys.stderr)
        index[section] = list(entries.values())
    with atomic_write(index_path) as handle:
        handle.write((json.dumps(index, indent=2) + "\n").encode())


if __name__ == "__main__":
    main(sys.argv[1:])
