"""Quality of the shipped ``fashion-clip`` on the Fashion-MNIST test split (the README's "fashion-clip" table).

    python benchmarks/fashion_clip_quality.py [--out models/pretrained/fashion_clip_quality.json]

* zero-shot class accuracy: the argmax over the ten prompts "a photo of a {class}";
* attribute accuracy, per attribute: with the true class and the image's other attributes fixed, the argmax over
  the attribute's values in the template "a {size}, {tone}, {pattern} {class}", against the pixel measurement;
  the same on the images whose (class, attribute, value) is a held-out combination (never in a training caption);
* retrieval on the first 1,000 test images and their test captions: text->image and image->text R@1 and R@10,
  strict (the paired item) and by meaning (an item whose caption the query's describes truly counts too);
* CLIPScore (``genmetrics.clip_score``, w = 2.5) of the 10,000 test images with their own captions and with the
  captions shuffled (a seeded permutation): mean, std and quantiles, and the fraction of images whose own caption
  scores higher than the shuffled one.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import genmetrics
from genmetrics.features.clip import ClipExtractor
from genmetrics.io import fashion_captions as fc
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels

BATCH = 500
RETRIEVAL = 1000
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def image_embeddings(clip: ClipExtractor, images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, E) L2-normalised image embeddings, through the extractor's own preprocessing."""
    rgb = np.repeat(images[..., None], 3, axis=3)
    return np.concatenate([clip.forward(torch.stack([clip.preprocess(image) for image in rgb[i:i + BATCH]]))
                           ["features"].numpy() for i in range(0, len(rgb), BATCH)])


def zero_shot(clip: ClipExtractor, feats: np.ndarray, labels: np.ndarray) -> float:
    text = clip.encode_text([fc.class_prompt(c) for c in range(len(fc.CLASS_NAMES))])
    return float(((feats @ text.T).argmax(1) == labels).mean())


def attribute_accuracy(clip: ClipExtractor, feats: np.ndarray, labels: np.ndarray,
                       found: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per attribute: accuracy on all images and on those in a held-out combination."""
    template = "a {size}, {tone}, {pattern} {cls}"
    out = {}
    for name, values in fc.ATTRIBUTES.items():
        scores = []
        for v in range(len(values)):
            texts = [fc.fill(template, int(label), {**fc.attribute_words(found, i), name: values[v]})
                     for i, label in enumerate(labels)]
            scores.append((feats * clip.encode_text(texts, batch_size=256)).sum(1))
        hits = np.argmax(scores, axis=0) == found[name]
        held = np.zeros(len(labels), bool)
        for cls, attr, value in fc.HELD_OUT_COMBOS:
            if attr == name:
                held |= (labels == fc.CLASS_NAMES.index(cls)) & (found[name] == values.index(value))
        out[name] = {"accuracy": float(hits.mean()), "held_out_accuracy": float(hits[held].mean()),
                     "held_out_images": int(held.sum())}
    return out


def retrieval(clip: ClipExtractor, feats: np.ndarray, records: list[fc.Caption], labels: np.ndarray,
              found: dict[str, np.ndarray]) -> dict[str, float]:
    """R@1 / R@10 both ways on the first RETRIEVAL pairs, strict and by meaning."""
    n = RETRIEVAL
    sims = feats[:n] @ clip.encode_text([r.text for r in records[:n]], batch_size=256).T  # (image, text)
    true = labels[:n, None] == np.array([r.label for r in records[:n]])[None]
    for name, words in fc.ATTRIBUTES.items():
        stated = np.array([words.index(r.stated[name]) if name in r.stated else -1 for r in records[:n]])
        true &= (stated[None] == -1) | (stated[None] == found[name][:n, None])
    out = {}
    for direction, matrix, truth in (("image_to_text", sims, true), ("text_to_image", sims.T, true.T)):
        ranked = np.argsort(-matrix, axis=1, kind="stable")
        for k in (1, 10):
            top = ranked[:, :k]
            out[f"{direction}_R@{k}"] = float((top == np.arange(n)[:, None]).any(1).mean())
            out[f"{direction}_R@{k}_by_meaning"] = float(np.take_along_axis(truth, top, 1).any(1).mean())
    return out


def clipscore_distributions(images: np.ndarray, captions: list[str], seed: int = 0) -> dict[str, dict]:
    """genmetrics.clip_score of the images with their captions and with the captions permuted."""
    shuffled = [captions[i] for i in np.random.default_rng(seed).permutation(len(captions))]
    out, per_image = {}, {}
    for kind, texts in (("matched", captions), ("shuffled", shuffled)):
        result = genmetrics.clip_score(images, texts, clip_model="fashion-clip", progress=False, cache=False)
        scores = np.array([row["score"] for row in result.per_sample])
        per_image[kind] = scores
        out[kind] = {"mean": result.metrics["clip_score_mean"], "std": result.metrics["clip_score_std"],
                     "quantiles": dict(zip(map(str, QUANTILES), np.quantile(scores, QUANTILES).round(4).tolist()))}
    out["matched_above_shuffled"] = float((per_image["matched"] > per_image["shuffled"]).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="Also write the numbers to this JSON file.")
    args = parser.parse_args()
    images, labels = fashion_mnist("test"), fashion_mnist_labels("test").astype(np.int64)
    clip = genmetrics.ClipConfig(model="fashion-clip").build()
    feats = image_embeddings(clip, images)
    found = fc.attributes(images, labels)
    records = fc.caption_records(images, labels, "test")
    report = {"weights_sha256": clip.spec.weights_sha256, "zero_shot_accuracy": zero_shot(clip, feats, labels),
              "attributes": attribute_accuracy(clip, feats, labels, found),
              "retrieval": retrieval(clip, feats, records, labels, found),
              "clip_score": clipscore_distributions(images, [r.text for r in records])}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
