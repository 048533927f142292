"""torch-fidelity's TF-Inception extractor vs ours, same weights, same images, one after the other.

    python benchmarks/extract_vs_torch_fidelity.py [--n 128] [--fid-n 2000] [--workers 0]

Prints img/s of each, the ratio, the max abs feature difference, the fp32 compute bound measured in the
same run (2048^3 fp32 matmul GFLOP/s / 11.4 GFLOP per image), and for --precision bf16 its img/s and the
FID of --fid-n Fashion-MNIST test images vs as many training images next to the fp32 FID.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from genmetrics.features.extract import extract_features
from genmetrics.features.inception import InceptionExtractor, torch_fidelity_state_dict
from genmetrics.features.weights import WeightsFile
from genmetrics.io.idx import fashion_mnist
from genmetrics.io.images import open_source
from genmetrics.metrics.fid import fid_from_features

GFLOP_PER_IMAGE = 11.4
BATCH = 32


def torch_fidelity_extractor(weights: WeightsFile) -> FeatureExtractorInceptionV3:
    """torch-fidelity's own class, built by its constructor from default_1's tensors mapped to its names."""
    buffer = io.BytesIO()
    torch.save(torch_fidelity_state_dict(weights)[0], buffer)
    buffer.seek(0)
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer)


def run_torch_fidelity(net: FeatureExtractorInceptionV3, images: np.ndarray) -> tuple[np.ndarray, float]:
    """(N, H, W, 3) uint8 -> (features (N, 2048), seconds), batches of BATCH as torch-fidelity feeds them."""
    start = time.perf_counter()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), BATCH):
            batch = torch.from_numpy(images[i:i + BATCH]).permute(0, 3, 1, 2).contiguous()
            out.append(net(batch)[0].numpy())
    return np.concatenate(out), time.perf_counter() - start


def run_ours(extractor: InceptionExtractor, images: np.ndarray, workers: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    feats = extract_features(open_source(images), extractor, batch_size=BATCH, workers=workers, progress=False)
    return feats.features, time.perf_counter() - start


def compute_bound() -> tuple[float, float]:
    """(fp32 matmul GFLOP/s at 2048^3, the img/s that implies for 11.4 GFLOP per image)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    repeats = 10
    for _ in range(repeats):
        a @ b
    gflops = 2 * 2048**3 * repeats / (time.perf_counter() - start) / 1e9
    return gflops, gflops / GFLOP_PER_IMAGE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=128, help="images per size for the speed comparison")
    parser.add_argument("--fid-n", type=int, default=2000, help="images per side for the bf16 FID check (0: skip)")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {BATCH}, workers {args.workers}")

    ours = InceptionExtractor()
    theirs = torch_fidelity_extractor(ours.weights)
    fast = InceptionExtractor(precision="bf16")
    test = fashion_mnist("test")
    for size in (299, 32):
        images = np.repeat(test[: args.n, :, :, None], 3, axis=3)
        if size == 299:  # Fashion-MNIST upscaled outside the timed region, so both see the same 299x299 input
            images = np.stack([np.asarray(torch.nn.functional.interpolate(
                torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=(299, 299), mode="bilinear")[0]
                .permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)) for img in images])
        images = np.ascontiguousarray(images)
        run_ours(ours, images[:BATCH], args.workers)  # warm-up both
        run_torch_fidelity(theirs, images[:BATCH])
        feats_theirs, t_theirs = run_torch_fidelity(theirs, images)
        feats_ours, t_ours = run_ours(ours, images, args.workers)
        feats_fast, t_fast = run_ours(fast, images, args.workers)
        n = len(images)
        print(f"{size}x{size}: torch-fidelity {n / t_theirs:6.2f} img/s | ours fp32 {n / t_ours:6.2f} img/s "
              f"(ratio {t_theirs / t_ours:.2f}x, max abs diff {np.abs(feats_ours - feats_theirs).max():.2e}) | "
              f"ours bf16 {n / t_fast:6.2f} img/s (ratio {t_theirs / t_fast:.2f}x, max abs diff "
              f"{np.abs(feats_fast - feats_theirs).max():.2e})")
    gflops, bound = compute_bound()
    print(f"fp32 compute bound: matmul {gflops:.0f} GFLOP/s / {GFLOP_PER_IMAGE} GFLOP = {bound:.2f} img/s")

    if args.fid_n:
        real = test[: args.fid_n]
        other = fashion_mnist("train")[: args.fid_n]
        fids = {}
        for name, extractor in (("fp32", ours), ("bf16", fast)):
            a = run_ours(extractor, real, args.workers)[0]
            b = run_ours(extractor, other, args.workers)[0]
            fids[name] = fid_from_features(a, b)
        rel = abs(fids["bf16"] - fids["fp32"]) / fids["fp32"]
        print(f"FID {args.fid_n} Fashion-MNIST test vs {args.fid_n} train: fp32 {fids['fp32']:.4f}, "
              f"bf16 {fids['bf16']:.4f} (relative deviation {rel:.2%})")


if __name__ == "__main__":
    main()
