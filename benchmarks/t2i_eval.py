"""Evaluation of a text-to-image checkpoint (``genmetrics train t2i``): the README's "Text-to-image" tables.

    python benchmarks/t2i_eval.py [CHECKPOINT] [--captions 1000] [--per-prompt 10] [--sweep 0,0.5,1,2,4]
                                  [--out-dir models/pretrained/t2i]

1. **Test captions** (the MS-COCO protocol for this domain): one sample for each of the first ``--captions`` test
   images' captions (``genmetrics.io.fashion_captions``, split "test": all templates and attributes), scored
   against the 10,000 test images: FID and KID with TF-Inception and with fashion-cnn, CLIPScore (fashion-clip)
   of each sample with its prompt and with the prompts shuffled (a seeded permutation), fashion-cnn class accuracy w.r.t. the caption's class, attribute accuracy (the
   pixel measurements of the sample against what the caption states), sampling speed. The same for the real test
   images with their own captions: the ceiling (their attribute accuracy is 1 by construction).
2. **Prompt suite** (``prompt_suite``: class, attribute, held-out combination, held-out template):
   ``--per-prompt`` samples per prompt; CLIPScore, class and attribute accuracy per category.
3. **Guidance sweep**: protocol 1 on ``--sweep-captions`` captions for each w; CLIPScore against FID (GLIDE's
   trade-off), plotted.

Every set is drawn from seed ``--seed`` (the same initial noise for every w). Writes ``t2i_eval.json``,
``t2i_sweep.png`` and ``t2i_prompts.png`` (rows = prompts) into ``--out-dir`` and prints the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
import genmetrics
from benchmarks.class_fidelity import classifier_logits
from genmetrics.io import fashion_captions as fc
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels
from genmetrics_models.checkpoint import load_checkpoint, pretrained
from genmetrics_models.files import png_bytes, write_bytes, write_figure
from genmetrics_models.train import draw, image_grid

REFERENCE = "fashion-mnist-test"
GRID_PROMPTS = ("a photo of a t-shirt", "a photo of a dark t-shirt", "a photo of a light t-shirt",
                "a photo of a trouser", "a small, plain bag", "a large, patterned bag", "a photo of a dark sneaker",
                "a photo of a light sandal", "a picture of a patterned, dark dress", "a photo of an ankle boot")


def attribute_accuracy(images: np.ndarray, labels: Sequence[int], stated: Sequence[dict[str, str]]) -> float:
    """The fraction of stated attributes that the images' pixel measurements (with the asked class's thresholds)
    show; nan when nothing is stated."""
    found = fc.attributes(images, np.asarray(labels))
    hits = [fc.ATTRIBUTES[name][found[name][i]] == word for i, words in enumerate(stated)
            for name, word in words.items()]
    return float(np.mean(hits)) if hits else float("nan")


def clip_score(images: np.ndarray, prompts: Sequence[str]) -> float:
    result = genmetrics.clip_score(images, list(prompts), clip_model="fashion-clip", progress=False, cache=False)
    return float(result.metrics["clip_score_mean"])


def distances(images: np.ndarray) -> dict[str, float]:
    """FID and KID (x1e3) against the test set with TF-Inception and fashion-cnn."""
    out = {}
    for extractor, tag in (("inception", ""), ("fashion-cnn", "_fashion_cnn")):
        result = genmetrics.score(images, REFERENCE, "fid,kid", extractor=extractor, progress=False)
        out[f"fid{tag}"] = float(result.metrics["fid"])
        out[f"kid{tag}_x1e3"] = 1e3 * float(result.metrics["kid_mean"])
    return out


def scored(images: np.ndarray, records: Sequence, with_distances: bool = True) -> dict[str, float]:
    """The metrics of images made for ``records`` (captions or prompts: text, label, stated)."""
    labels, texts = [r.label for r in records], [r.text for r in records]
    shuffled = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    row = {"clip_score": clip_score(images, texts), "clip_score_shuffled": clip_score(images, shuffled),
           "class_accuracy": float((classifier_logits(images).argmax(1) == np.array(labels)).mean()),
           "attribute_accuracy": attribute_accuracy(images, labels, [r.stated for r in records])}
    return {**row, **(distances(images) if with_distances else {})}


def sample(model, prompts: Sequence[str], seed: int, **options) -> tuple[np.ndarray, float]:
    """Samples (one per prompt) and the images per second it took."""
    start = time.perf_counter()
    images, _ = draw(model, "fashion-mnist", len(prompts), seed, prompts=list(prompts), **options)
    return images, len(prompts) / (time.perf_counter() - start)


def plot_sweep(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "fid", "FID (TF-Inception)"), (axes[1], "fid_fashion_cnn", "FID (fashion-cnn)")):
        ax.plot([r[key] for r in rows], [r["clip_score"] for r in rows], "o-")
        for r in rows:
            ax.annotate(f"w={r['guidance']:g}", (r[key], r["clip_score"]), textcoords="offset points", xytext=(4, 4))
        ax.set(xlabel=label, ylabel="CLIPScore (fashion-clip)")
    figure.suptitle("t2i: classifier-free guidance trades FID for CLIPScore")
    figure.tight_layout()
    write_figure(path, figure, dpi=100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="t2i folder or step-*.json (default: shipped)")
    parser.add_argument("--captions", type=int, default=1000)
    parser.add_argument("--per-prompt", type=int, default=10)
    parser.add_argument("--sweep", default="0,0.5,1,2,4")
    parser.add_argument("--sweep-captions", type=int, default=500)
    parser.add_argument("--sampling-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    model = load_checkpoint(args.checkpoint or pretrained("t2i"))
    steps = {} if args.sampling_steps is None else {"sampling_steps": args.sampling_steps}
    images, labels = fashion_mnist("test"), fashion_mnist_labels("test").astype(np.int64)
    captions = fc.caption_records(images, labels, "test")
    n = args.captions
    report = {"checkpoint": str(args.checkpoint or pretrained("t2i")), "guidance": model.hparams["guidance"],
              "sampling_steps": steps.get("sampling_steps", model.hparams["sampling_steps"]), "captions": n}
    fake, speed = sample(model, [c.text for c in captions[:n]], args.seed, **steps)
    report["test_captions"] = {"t2i": {**scored(fake, captions[:n]), "images_per_second": speed},
                               "real": scored(images[:n, :, :, None], captions[:n])}
    suite = fc.prompt_suite()
    repeated = [p for p in suite for _ in range(args.per_prompt)]
    fake, _ = sample(model, [p.text for p in repeated], args.seed, **steps)
    report["prompt_suite"] = {category: scored(fake[[p.category == category for p in repeated]],
                                               [p for p in repeated if p.category == category], False)
                              for category in dict.fromkeys(p.category for p in suite)}
    sweep = []
    for w in [float(item) for item in args.sweep.split(",") if item]:
        fake, _ = sample(model, [c.text for c in captions[:args.sweep_captions]], args.seed, guidance=w, **steps)
        sweep.append({"guidance": w, **scored(fake, captions[:args.sweep_captions])})
    report["sweep"] = sweep
    print(json.dumps(report, indent=1))
    if args.out_dir:
        write_bytes(args.out_dir / "t2i_eval.json", (json.dumps(report, indent=1) + "\n").encode())
        if sweep:
            plot_sweep(sweep, args.out_dir / "t2i_sweep.png")
        grid, _ = sample(model, [p for p in GRID_PROMPTS for _ in range(8)], args.seed, **steps)
        write_bytes(args.out_dir / "t2i_prompts.png", png_bytes(image_grid(grid, 8)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
