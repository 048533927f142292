"""torch-fidelity's TF-Inception extractor vs ours, same weights, same images, one after the other.

    python benchmarks/extract_vs_torch_fidelity.py [--n 64] [--rounds 3] [--fid-n 2000] [--workers 0]
        [--device cpu|cuda] [--emulated-bf16]

Prints img/s of each, the ratio, the max abs feature difference, and the fp32 compute bound measured in the
same run (2048^3 fp32 matmul GFLOP/s / 11.4 GFLOP per image; on the CPU only), each the median of rounds
that interleave all of them. Then, for each reduced precision (bf16 on a CPU with native bf16, bf16 and fp16
on CUDA), its img/s and the FID of --fid-n Fashion-MNIST test images vs as many training images next to the
fp32 FID. A CPU without native bf16 (no AVX-512 BF16 / AMX) only emulates it, several times slower than fp32:
the benchmark says so and skips it, unless --emulated-bf16.
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from genmetrics.features.extract import extract_features
from genmetrics.features.inception import (
    InceptionExtractor,
    ieee_fp32_convs,
    native_cpu_bf16,
    torch_fidelity_state_dict,
)
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


def run_torch_fidelity(net: FeatureExtractorInceptionV3, images: np.ndarray, device: torch.device
                       ) -> tuple[np.ndarray, float]:
    """(N, H, W, 3) uint8 -> (features (N, 2048), seconds), batches of BATCH as torch-fidelity feeds them; on a GPU
    with full-fp32 convs like ours (cuDNN's default TF32 would make its features differ from its CPU's by ~1e-3)."""
    start = time.perf_counter()
    out = []
    with torch.no_grad(), ieee_fp32_convs():
        for i in range(0, len(images), BATCH):
            batch = torch.from_numpy(images[i:i + BATCH]).permute(0, 3, 1, 2).contiguous().to(device)
            out.append(net(batch)[0].cpu().numpy())
    return np.concatenate(out), time.perf_counter() - start


def run_ours(extractor: InceptionExtractor, images: np.ndarray, workers: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    feats = extract_features(open_source(images), extractor, batch_size=BATCH, workers=workers, progress=False)
    return feats.features, time.perf_counter() - start


def compute_bound(repeats: int = 4) -> float:
    """The fp32 compute bound in img/s: 2048^3 fp32 matmul GFLOP/s over 11.4 GFLOP per image."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 2048**3 * repeats / (time.perf_counter() - start) / 1e9 / GFLOP_PER_IMAGE


def reduced_precisions(device: torch.device, emulated_bf16: bool) -> list[str]:
    """The opt-in precisions worth timing on ``device``; prints why bf16 is skipped on a CPU that emulates it,
    unless ``emulated_bf16`` asks for its FID check anyway."""
    if device.type == "cuda":
        return ["bf16", "fp16"]
    if native_cpu_bf16() or emulated_bf16:
        return ["bf16"]
    print("bf16: skipped, this CPU has no native bf16 (AVX-512 BF16 or AMX): oneDNN emulates it, several times "
          "slower than fp32 (1.1-1.9 vs 10 img/s measured on an AVX2 CPU), so --precision bf16 is no fast mode "
          "here; --emulated-bf16 runs it anyway for its FID deviation (about an hour on 2 cores)")
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="images per size and round for the speed comparison")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (medians are printed)")
    parser.add_argument("--fid-n", type=int, default=2000, help="images per side for the reduced-precision FID check "
                        "(0: skip)")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--emulated-bf16", action="store_true", help="run bf16 on a CPU without native bf16 too "
                        "(slow; for its FID deviation, which does not depend on the hardware beyond rounding)")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, threads {torch.get_num_threads()}, batch {BATCH}, "
          f"workers {args.workers}")

    ours = InceptionExtractor(device=device)
    theirs = torch_fidelity_extractor(ours.weights).to(device)
    fast = {precision: InceptionExtractor(precision=precision, device=device)
            for precision in reduced_precisions(device, args.emulated_bf16)}
    test = fashion_mnist("test")
    for size in (299, 32):
        images = np.repeat(test[: args.n, :, :, None], 3, axis=3)
        if size == 299:  # Fashion-MNIST upscaled outside the timed region, so both see the same 299x299 input
            images = np.stack([np.asarray(torch.nn.functional.interpolate(
                torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=(299, 299), mode="bilinear")[0]
                .permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)) for img in images])
        images = np.ascontiguousarray(images)
        for extractor in (ours, *fast.values()):  # warm-up all
            run_ours(extractor, images[:BATCH], args.workers)
        run_torch_fidelity(theirs, images[:BATCH], device)
        # Rounds interleave every contender (and the matmul bound), so a slow moment of a shared machine
        # touches all of them; each figure is the median over rounds.
        rates: dict[str, list[float]] = {name: [] for name in ("torch-fidelity", "fp32", *fast, "bound")}
        diffs: dict[str, float] = {}
        for _ in range(args.rounds):
            feats_theirs, seconds = run_torch_fidelity(theirs, images, device)
            rates["torch-fidelity"].append(len(images) / seconds)
            for precision, extractor in (("fp32", ours), *fast.items()):
                feats, seconds = run_ours(extractor, images, args.workers)
                rates[precision].append(len(images) / seconds)
                diffs[precision] = np.abs(feats - feats_theirs).max()
            if device.type == "cpu":
                rates["bound"].append(compute_bound())
        rate = {name: float(np.median(values)) for name, values in rates.items() if values}
        line = f"{size}x{size}: torch-fidelity {rate['torch-fidelity']:6.2f} img/s"
        for precision in ("fp32", *fast):
            line += (f" | ours {precision} {rate[precision]:6.2f} img/s (ratio "
                     f"{rate[precision] / rate['torch-fidelity']:.2f}x, max abs diff {diffs[precision]:.2e})")
        if "bound" in rate:
            line += (f" | fp32 compute bound {rate['bound']:.2f} img/s ({rate['bound'] * GFLOP_PER_IMAGE:.0f} GFLOP/s "
                     f"matmul): ours fp32 at {rate['fp32'] / rate['bound']:.0%} of it")
        print(line + f" [median of {args.rounds} rounds of {len(images)} images]", flush=True)

    if args.fid_n and fast:
        real = test[: args.fid_n]
        other = fashion_mnist("train")[: args.fid_n]
        fids = {}
        for precision, extractor in (("fp32", ours), *fast.items()):
            fids[precision] = fid_from_features(run_ours(extractor, real, args.workers)[0],
                                                run_ours(extractor, other, args.workers)[0])
        deviations = ", ".join(f"{precision} {fids[precision]:.4f} (relative deviation "
                               f"{abs(fids[precision] - fids['fp32']) / fids['fp32']:.2%})" for precision in fast)
        print(f"FID {args.fid_n} Fashion-MNIST test vs {args.fid_n} train: fp32 {fids['fp32']:.4f}, {deviations}")


if __name__ == "__main__":
    main()
