"""The README's results table of the reference generators, from the outputs of ``benchmarks/reference_models.sh``.

    bash benchmarks/reference_models.sh dcgan 2500 250 runs     # per model: train, sample 10,000, score twice
    python benchmarks/reference_models.py runs dcgan cgan ... --ship models/pretrained

For each model, RUNS holds the run folder ``MODEL/`` and the script's ``MODEL.{incep,fcnn}.json`` (``genmetrics
score --json`` of the 10,000 samples against ``fashion-mnist-test`` with TF-Inception and with fashion-cnn; a
missing Inception file is shown as not measured) and ``MODEL.train_time.json``. Sampling speed is measured here,
every model the same way one after the other. Prints the Markdown table (with the published Fashion-MNIST FIDs
beside ours and a real-data row) and, with ``--ship DIR``, writes each model's weights-only checkpoint and its last
sample grid to ``DIR/MODEL/`` and all numbers to ``DIR/results.json``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
import genmetrics
from genmetrics.io.idx import fashion_mnist
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics.kid import kid
from genmetrics.metrics.precision_recall import precision_recall
from genmetrics.references import resolve_reference
from models.checkpoint import export_weights, load_checkpoint, read_config
from models.files import write_bytes
from models.train import SAMPLE_CHUNK, draw

NUM_SAMPLES = 10_000
SPEED_SAMPLES = 2_000
PUBLISHED = {  # best Fashion-MNIST FID, 10,000 samples vs the 10,000 test images, TF-Inception at 299
    "dcgan": "26.5 (NS-GAN, Lucic et al. 2018)",
    "wgan": "21.5 (WGAN, Lucic et al. 2018)",
    "wgan-gp": "24.5 (WGAN-GP, Lucic et al. 2018)",
    "vae": "43.6 (VAE, Dai & Wipf 2019)",
}


def sampling_speed(folder: Path, n: int = SPEED_SAMPLES) -> float:
    """img/s of ``n`` samples of the checkpoint in ``folder`` through ``models.train.draw`` (chunks of 64, one
    thread): every model measured the same way, one after the other in one process."""
    model = load_checkpoint(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            draw(model, "fashion-mnist", SAMPLE_CHUNK, seed=1)  # warm-up
            start = time.perf_counter()
            draw(model, "fashion-mnist", n, seed=0)
            return n / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def read_results(runs: Path, model: str) -> dict[str, Any]:
    """One model's numbers: steps, training seconds, sampling img/s (measured now) and the metrics of both
    extractors (``inception`` None when ``MODEL.incep.json`` is missing: not measured)."""
    def load(suffix: str) -> dict[str, Any] | None:
        path = runs / f"{model}.{suffix}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    config = read_config(runs / model)
    inception, fashion = load("incep"), load("fcnn")
    for scored in (inception, fashion):
        if scored is None:
            continue
        n = scored["provenance"]["generated"]["n"]
        if n != NUM_SAMPLES or scored["provenance"]["reference"]["name"] != "fashion-mnist-test":
            raise SystemExit(f"{model}: scored {n} samples against {scored['provenance']['reference']}; the table "
                             f"needs {NUM_SAMPLES} against fashion-mnist-test")
    return {"model": model, "step": config["step"], "hparams": config["hparams"],
            "train_s": load("train_time")["train_s"], "sample_img_per_s": sampling_speed(runs / model),
            "inception": inception and inception["metrics"], "fashion_cnn": fashion["metrics"]}


def real_data_row() -> dict[str, Any]:
    """The same columns for real images, the floor of each metric: FID between the shipped statistics of all
    60,000 training images and the test set; KID and precision/recall of the training statistics' stored features
    (a seeded subset of 10,000) against the test features; fashion-cnn IS of that subset's images."""
    row: dict[str, Any] = {"model": "real (training images)"}
    for key, extractor in (("inception", "inception"), ("fashion_cnn", "fashion-cnn")):
        train = genmetrics.load_stats(resolve_reference("fashion-mnist-train", extractor))
        test = genmetrics.load_stats(resolve_reference("fashion-mnist-test", extractor))
        kid_mean, kid_std = kid(train.features, test.features)
        precision, recall = precision_recall(test.features, train.features)
        row[key] = {"fid": fid_from_stats(train.mu, train.sigma, test.mu, test.sigma), "kid_mean": kid_mean,
                    "kid_std": kid_std, "precision": precision, "recall": recall}
    scored = genmetrics.score(fashion_mnist("train"), None, "is", extractor="fashion-cnn", num_samples=NUM_SAMPLES,
                              progress=False)
    row["fashion_cnn"].update(scored.metrics)
    return row


def inception_cells(inc: dict[str, float] | None) -> str:
    """The FID, KID, precision and recall cells (— when not measured)."""
    if inc is None:
        return "| — | — | — | — "
    return (f"| {inc['fid']:.1f} | {1e3 * inc['kid_mean']:.1f} ± {1e3 * inc['kid_std']:.1f} | {inc['precision']:.3f} "
            f"| {inc['recall']:.3f} ")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README table: one row per model."""
    lines = [("| model | steps | training | sampling img/s | FID | KID ×10³ | precision | recall | FID (fashion-cnn) "
              "| KID ×10³ (fashion-cnn) | IS (fashion-cnn) | published FID |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        fcnn = row["fashion_cnn"]
        cost = (f"| `{row['model']}` | {row['step']:,} | {row['train_s'] / 60:.1f} min | {row['sample_img_per_s']:,.0f} "
                if "step" in row else f"| {row['model']} | — | — | — ")
        lines.append(
            cost + inception_cells(row["inception"]) + f"| {fcnn['fid']:.2f} | {1e3 * fcnn['kid_mean']:.0f} ± {1e3 * fcnn['kid_std']:.0f} "
            f"| {fcnn['is_mean']:.2f} ± {fcnn['is_std']:.2f} | {PUBLISHED.get(row['model'], '')} |")
    return "\n".join(lines)


def ship(runs: Path, rows: list[dict[str, Any]], out: Path) -> None:
    """Weights-only checkpoints and last sample grids into ``out/MODEL/``, the numbers into ``out/results.json``."""
    for row in rows:
        folder = out / row["model"]
        if folder.exists():
            shutil.rmtree(folder)
        export_weights(runs / row["model"], folder)
        write_bytes(folder / "samples.png", (runs / row["model"] / f"samples-{row['step']:08d}.png").read_bytes())
    write_bytes(out / "results.json", (json.dumps(rows, indent=1) + "\n").encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="folder with the run folders and the scores of reference_models.sh")
    parser.add_argument("models", nargs="+", help="models in table order")
    parser.add_argument("--ship", type=Path, default=None, help="write weights-only checkpoints and grids here")
    args = parser.parse_args(argv)
    rows = [read_results(args.runs, model) for model in args.models]
    if args.ship is not None:
        ship(args.runs, rows, args.ship)
    print(markdown([*rows, real_data_row()]))


if __name__ == "__main__":
    main()
