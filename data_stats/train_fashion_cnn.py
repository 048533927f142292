"""Train the ``fashion-cnn`` extractor's weights (genmetrics/features/fashion_cnn.safetensors) on Fashion-MNIST.

    python data_stats/train_fashion_cnn.py [--epochs 8] [--seed 0] [--out PATH]

Reproducible: the initialisation comes from ``torch.manual_seed(seed)``, the data order and augmentation
(random horizontal flips and shifts of up to 2 px, zero-padded) from a seeded ``torch.Generator``; torch runs
with ``--threads`` threads (default 2). Prints the test accuracy after every epoch and, at the end, the
file's sha256, which goes into ``WEIGHTS_SHA256`` in genmetrics/features/fashion_cnn.py. The file is written
atomically and holds the state dict plus metadata (seed, epochs, test accuracy, torch version).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

from genmetrics.features.fashion_cnn import WEIGHTS_PATH, FashionCNN
from genmetrics.io.atomic import atomic_write
from genmetrics.io.idx import fashion_mnist, fashion_mnist_labels

SHIFT = 2  # pixels of random translation


def as_tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``split`` -> (images (N, 1, 28, 28) float32 in [0, 255], labels (N,) int64)."""
    images = torch.from_numpy(fashion_mnist(split).astype(np.float32))[:, None]
    return images, torch.from_numpy(fashion_mnist_labels(split).astype(np.int64))


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, 1, 28, 28) -> same shape: each image flipped left-right with p = 1/2 and shifted by up to SHIFT px."""
    flip = torch.rand(len(batch), generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
    padded = F.pad(batch, (SHIFT,) * 4)
    offsets = torch.randint(0, 2 * SHIFT + 1, (len(batch), 2), generator=generator).tolist()
    return torch.stack([image[:, dy:dy + 28, dx:dx + 28] for image, (dy, dx) in zip(padded, offsets)])


@torch.inference_mode()
def accuracy(net: FashionCNN, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on (N, 1, 28, 28) ``images``."""
    net.eval()
    correct = sum(int((net(images[i:i + batch_size])[1].argmax(1) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


def train(train_set: tuple[torch.Tensor, torch.Tensor], test_set: tuple[torch.Tensor, torch.Tensor], *,
          epochs: int, seed: int, batch_size: int = 128, lr: float = 3e-3, weight_decay: float = 5e-4) -> FashionCNN:
    """AdamW with a one-cycle learning rate over ``epochs`` shuffled epochs; prints the test accuracy per epoch."""
    torch.manual_seed(seed)
    net = FashionCNN()
    generator = torch.Generator().manual_seed(seed)
    images, labels = train_set
    steps = epochs * -(-len(images) // batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for i in range(0, len(images), batch_size):
            index = order[i:i + batch_size]
            loss = F.cross_entropy(net(augment(images[index], generator))[1], labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(index)
        print(f"epoch {epoch}/{epochs}: train loss {total / len(images):.4f}, test accuracy "
              f"{accuracy(net, *test_set):.4f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return net.eval()


def save(net: FashionCNN, out: Path, metadata: dict[str, str]) -> str:
    """Write the state dict (safetensors, with string ``metadata``) to ``out`` atomically; returns its sha256."""
    data = safetensors.torch.save({k: v.contiguous() for k, v in net.state_dict().items()}, metadata=metadata)
    with atomic_write(out) as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set, test_set = as_tensors("train"), as_tensors("test")
    start, cpu_start = time.perf_counter(), time.process_time()
    net = train(train_set, test_set, epochs=args.epochs, seed=args.seed)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    test_accuracy = accuracy(net, *test_set)
    sha = save(net, args.out, {"network": "fashion-cnn", "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist)",
                               "epochs": str(args.epochs), "seed": str(args.seed),
                               "test_accuracy": f"{test_accuracy:.4f}", "torch": torch.__version__})
    print(f"test accuracy {test_accuracy:.4f}; trained in {seconds:.0f} s ({cpu_seconds:.0f} s of CPU time) with "
          f"{args.threads} threads")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes), sha256 {sha}")


if __name__ == "__main__":
    main()
