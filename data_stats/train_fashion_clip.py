"""Train the ``fashion-clip`` weights (genmetrics/features/fashion_clip.safetensors) on Fashion-MNIST captions.

    python data_stats/train_fashion_clip.py [--epochs 6] [--seed 0] [--threads 1] [--out PATH]

The model is the open_clip ``CLIP`` of genmetrics/features/fashion_clip.json (a ViT with 4x4 patches on 28x28
inputs, a 3-layer text transformer with open_clip's SimpleTokenizer). Each of the 60,000 training images has the
deterministic caption of ``genmetrics.io.fashion_captions`` (split "train": held-out templates and combinations
never appear). Images are preprocessed exactly as the extractor does (gray replicated to RGB, normalised with the
config's mean/std; a 28x28 image is not resized), flipped left-right with p = 1/2 (which leaves every caption
attribute unchanged).

Loss: CLIP's symmetric contrastive loss over a batch's images and its distinct captions, with multi-positive
targets -- a caption is a positive of every image it describes truly (same class, and each attribute it states
equal to the image's), so two images with the same caption are not pushed apart. AdamW, a linear warm-up then
cosine decay, seeded (``torch.manual_seed(seed)`` for the weights, a ``torch.Generator`` for order and flips).

Prints zero-shot class accuracy on the test split ("a photo of a {class}") after every epoch and, at the end, the
sha256 of the written file (float16 tensors), which goes into ``FASHION_CLIP_SHA256`` in genmetrics/features/clip.py.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import safetensors.torch
import torch
import torch.nn.functional as F

from genmetrics.features.clip import (FASHION_CLIP, FASHION_CLIP_CONFIG, FASHION_CLIP_WEIGHTS, build_clip_model,
                                     resolve_clip_model)
from genmetrics.io.atomic import atomic_write
from genmetrics.io.fashion_captions import ATTRIBUTES, CLASS_NAMES, attributes, caption_records, class_prompt
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels


def normalised(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 3, 28, 28) float32 ``(x / 255 - mean) / std``, the extractor's preprocessing."""
    x = (torch.from_numpy(np.array(images)).float() / 255 - mean) / std
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def compatibility(labels: np.ndarray, values: dict[str, np.ndarray], records: list) -> np.ndarray:
    """(N, U) bool: caption record j describes image i truly (its class, and every attribute it states)."""
    ok = labels[:, None] == np.array([r.label for r in records])[None]
    for name, words in ATTRIBUTES.items():
        stated = np.array([words.index(r.stated[name]) if name in r.stated else -1 for r in records])
        ok &= (stated[None] == -1) | (stated[None] == values[name][:, None])
    return ok


@torch.inference_mode()
def zero_shot_accuracy(model: torch.nn.Module, tokenizer, images: torch.Tensor, labels: np.ndarray) -> float:
    """Top-1 accuracy of "a photo of a {class}" prompts on preprocessed ``images``."""
    model.eval()
    text = F.normalize(model.encode_text(tokenizer([class_prompt(c) for c in range(len(CLASS_NAMES))])), dim=-1)
    preds = torch.cat([(F.normalize(model.encode_image(images[i:i + 1000]), dim=-1) @ text.T).argmax(1)
                       for i in range(0, len(images), 1000)])
    return float((preds.numpy() == labels).mean())


def train(epochs: int, seed: int, batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.1,
          warmup: int = 200) -> torch.nn.Module:
    config = resolve_clip_model(FASHION_CLIP)
    mean, std = config.preprocess_cfg["mean"][0], config.preprocess_cfg["std"][0]
    torch.manual_seed(seed)
    model = build_clip_model(config)
    tokenizer = open_clip.SimpleTokenizer(context_length=config.model_cfg["text_cfg"]["context_length"])
    raw, labels = fashion_mnist("train"), fashion_mnist_labels("train").astype(np.int64)
    records = caption_records(raw, labels, "train")
    texts = sorted({r.text for r in records})
    text_index = {t: i for i, t in enumerate(texts)}
    unique = [next(r for r in records if r.text == t) for t in texts]
    caption_ids = torch.tensor([text_index[r.text] for r in records])
    tokens = tokenizer(texts)
    compatible = torch.from_numpy(compatibility(labels, attributes(raw, labels), unique))
    images = normalised(raw, mean, std)
    test_raw, test_labels = fashion_mnist("test"), fashion_mnist_labels("test").astype(np.int64)
    test_images = normalised(test_raw, mean, std)
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * (len(images) // batch_size)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, steps) / steps)))
    start, step = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for i in range(0, len(images) - batch_size + 1, batch_size):
            index = order[i:i + batch_size]
            flip = torch.rand(len(index), generator=generator) < 0.5
            batch = torch.where(flip[:, None, None, None], images[index].flip(3), images[index])
            ids, inverse = caption_ids[index].unique(return_inverse=True)
            image_emb = F.normalize(model.encode_image(batch), dim=-1)
            text_emb = F.normalize(model.encode_text(tokens[ids]), dim=-1)
            logits = model.logit_scale.exp() * image_emb @ text_emb.T  # (B, U)
            targets = compatible[index][:, ids].float()
            targets[torch.arange(len(index)), inverse] = 1.0
            loss = 0.5 * (torch.sum(-targets / targets.sum(1, keepdim=True) * logits.log_softmax(1), 1).mean() +
                          torch.sum(-targets.T / targets.T.sum(1, keepdim=True) * logits.T.log_softmax(1), 1).mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            total += loss.item()
            step += 1
        print(f"epoch {epoch}/{epochs}: loss {total / (len(images) // batch_size):.4f}, zero-shot test accuracy "
              f"{zero_shot_accuracy(model, tokenizer, test_images, test_labels):.4f} "
              f"({time.perf_counter() - start:.0f} s, step {step})", file=sys.stderr, flush=True)
    return model.eval()


def save(model: torch.nn.Module, out: Path, metadata: dict[str, str]) -> str:
    """Write the state dict as float16 safetensors with ``metadata`` to ``out`` atomically; returns its sha256."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    data = safetensors.torch.save(state, metadata=metadata)
    with atomic_write(out) as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=FASHION_CLIP_WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = train(args.epochs, args.seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    sha = save(model, args.out, {"network": "fashion-clip", "config": FASHION_CLIP_CONFIG.name,
                                 "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist), genmetrics captions",
                                 "epochs": str(args.epochs), "seed": str(args.seed), "torch": torch.__version__})
    print(f"trained in {seconds:.0f} s ({cpu_seconds:.0f} s of CPU time) with {args.threads} threads")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes), sha256 {sha}")


if __name__ == "__main__":
    main()
