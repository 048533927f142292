"""The README's results table of the reference generators, from the outputs of ``benchmarks/reference_models.sh``.

    bash benchmarks/reference_models.sh dcgan 2500 250 runs     # per model: train, sample 10,000, score twice
    bash benchmarks/score_samples.sh ddpm-cfg runs/ddpm runs --guidance 1   # another row of the same run
    python benchmarks/reference_models.py runs dcgan cgan ddpm-cfg=ddpm:guidance=1 ... --ship models/pretrained

A row is ``NAME`` or ``NAME=FOLDER:OPTION=VALUE,...`` (sampling options of the model, e.g. ``guidance``,
``sampling_steps``): RUNS holds the run folder ``FOLDER/`` (default NAME), its ``FOLDER.train_time.json``
(``{"train_s": ...}``, plus ``"warm_start_step": S`` for a run warm-started from a checkpoint of step S with fresh
optimizers: the row records it, its steps cell reads "S + REST warm"), and ``NAME.{incep,fcnn}.json``
(``genmetrics score --json`` of the row's 10,000 samples against ``fashion-mnist-test`` with TF-Inception and with
fashion-cnn; a missing Inception file is shown as not measured). For a conditional model,
``NAME.samples.npz`` (``genmetrics sample``'s output, with the labels each image was drawn for) gives the row's
class accuracy: the share of samples the shipped fashion-cnn assigns to their label (none at guidance −1, which
samples the null label). Sampling speed is measured here, every row the same way one after the other. A row
``shipped:NAME`` is not measured: it is the row NAME of ``--results`` (default ``models/pretrained/results.json``),
so the README's whole table can be printed when only some of its models were re-run. Prints the Markdown table
(with each row's anchor, the published Fashion-MNIST FID of its family or the generators issue's goal, beside ours,
and a real-data row) and, with ``--ship DIR``, writes each run folder's weights-only checkpoint, its last sample
grid and its training ``history.json`` (the FID-vs-steps curve of ``benchmarks/fid_curves.py``) to ``DIR/FOLDER/``
and the measured rows' numbers into ``DIR/results.json`` (replacing rows of the same name, keeping the others).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing
import genmetrics
from benchmarks.class_fidelity import class_fidelity
from genmetrics.io.idx import fashion_mnist
from genmetrics.metrics.fid import fid_from_stats
from genmetrics.metrics.kid import kid
from genmetrics.metrics.precision_recall import precision_recall
from genmetrics.references import resolve_reference
from genmetrics.seeding import CHUNK
from genmetrics_models.base import Generator
from genmetrics_models.checkpoint import export_weights, load_checkpoint, read_config
from genmetrics_models.data import fashion_mnist as fashion_mnist_with_labels
from genmetrics_models.files import write_bytes
from genmetrics_models.train import draw, sample_chunks

NUM_SAMPLES = 10_000
SPEED_SAMPLES = 2_000
SPEED_SECONDS = 60.0
ANCHORS = {  # (FID, source): the best published Fashion-MNIST FID of the row's family (10,000 samples vs the 10,000
    # test images, TF-Inception at 299) or, where none is published under this protocol, the generators issue's goal
    "dcgan": (26.5, "NS-GAN, Lucic et al. 2018"),
    "cgan": (26.5, "NS-GAN, Lucic et al. 2018; no conditional GAN published under this protocol"),
    "wgan": (21.5, "WGAN, Lucic et al. 2018"),
    "wgan-gp": (24.5, "WGAN-GP, Lucic et al. 2018"),
    "vae": (43.6, "VAE, Dai & Wipf 2019"),
    "ddpm-cfg": (15.0, "goal < 15, the generators issue"),
}
SHIPPED_RESULTS = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "results.json"


@dataclass(frozen=True)
class Row:
    """A table row: ``name``, the run folder below RUNS, and the sampling options of its samples."""

    name: str
    folder: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Row:
        """``NAME`` or ``NAME=FOLDER:KEY=VALUE,...`` (values as numbers)."""
        name, _, rest = text.partition("=")
        folder, _, options = (rest or name).partition(":")
        pairs = [item.split("=", 1) for item in options.split(",") if item]
        if any(len(pair) != 2 for pair in pairs):
            raise SystemExit(f"row {text!r}: expected NAME or NAME=FOLDER:KEY=VALUE,...")
        return cls(name, folder, {key: float(value) if "." in value or "e" in value else int(value)
                                  for key, value in pairs})


def sampling_speed(model: Generator, options: dict[str, Any], n: int = SPEED_SAMPLES,
                   seconds: float = SPEED_SECONDS) -> float:
    """img/s of ``model`` with sampling ``options`` through ``genmetrics_models.train.sample_chunks``
    (chunks of 64, one thread), over ``n`` samples or the chunks that fit in ``seconds`` (at least one): every row
    measured the same way, one after the other in one process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            draw(model, "fashion-mnist", CHUNK, seed=1, **options)  # warm-up
            start, drawn = time.perf_counter(), 0
            for images, _ in sample_chunks(model, "fashion-mnist", n, seed=0, **options):
                drawn += len(images)
                if time.perf_counter() - start > seconds:
                    break
            return drawn / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def held_out_bits_per_dim(model: Generator) -> float | None:
    """``model``'s NLL in bits/dim on the 10,000 test images, for models with a likelihood (``test_bits_per_dim``,
    the PixelCNN); None for the others."""
    if not hasattr(model, "test_bits_per_dim"):
        return None
    images, labels = fashion_mnist_with_labels("test")
    return model.test_bits_per_dim(torch.tensor(images), torch.tensor(labels))


def read_results(runs: Path, row: Row) -> dict[str, Any]:
    """One row's numbers: steps, training seconds, sampling img/s (measured now), test bits/dim (likelihood
    models) and the metrics of both extractors (``inception`` None when ``NAME.incep.json`` is missing: not
    measured)."""
    def load(name: str, suffix: str) -> dict[str, Any] | None:
        path = runs / f"{name}.{suffix}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    config, model = read_config(runs / row.folder), load_checkpoint(runs / row.folder)
    inception, fashion = load(row.name, "incep"), load(row.name, "fcnn")
    # w = -1 is the ddpm's unconditional sampling (the null label alone, DDPM.predict_eps); other weights use labels
    unconditional = not model.conditional or row.options.get("guidance") == -1
    accuracy = None if unconditional else samples_class_accuracy(runs / f"{row.name}.samples.npz")
    for scored in (inception, fashion):
        if scored is None:
            continue
        n = scored["provenance"]["generated"]["n"]
        if n != NUM_SAMPLES or scored["provenance"]["reference"]["name"] != "fashion-mnist-test":
            raise SystemExit(f"{row.name}: scored {n} samples against {scored['provenance']['reference']}; the "
                             f"table needs {NUM_SAMPLES} against fashion-mnist-test")
    timing = load(row.folder, "train_time")
    warm = {"warm_start_step": timing["warm_start_step"]} if "warm_start_step" in timing else {}
    return {"model": row.name, "checkpoint": row.folder, "sample_options": row.options, "step": config["step"], **warm,
            "hparams": config["hparams"], "train_s": timing["train_s"],
            "sample_img_per_s": sampling_speed(model, row.options), "test_bits_per_dim": held_out_bits_per_dim(model),
            "inception": inception and inception["metrics"], "fashion_cnn": fashion["metrics"],
            "class_accuracy": accuracy}


def samples_class_accuracy(path: Path) -> float:
    """fashion-cnn's accuracy on the images of a ``genmetrics sample`` .npz w.r.t. the labels stored with them."""
    with np.load(path) as data:
        if "labels" not in data:
            raise SystemExit(f"{path}: no 'labels' array; sample the conditional model with `genmetrics sample`")
        return class_fidelity(data["images"], data["labels"]).accuracy


def shipped_row(results: Path, name: str) -> dict[str, Any]:
    """The row ``name`` of a results.json written by ``--ship``."""
    rows = {row["model"]: row for row in json.loads(results.read_text())}
    if name not in rows:
        raise SystemExit(f"shipped:{name}: no row {name!r} in {results}; it has {', '.join(rows)}")
    return rows[name]


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


def anchor_cell(row: dict[str, Any]) -> str:
    """The anchor FID with its source, and whether the row's Inception FID meets it (— when there is no anchor)."""
    if row["model"] not in ANCHORS:
        return "| — "
    value, source = ANCHORS[row["model"]]
    inception = row.get("inception")
    verdict = "" if inception is None else (" ✓ met" if inception["fid"] <= value else
                                            f" ✗ {inception['fid'] / value:.1f}× it")
    return f"| {value:g} ({source}){verdict} "


def steps_cell(row: dict[str, Any]) -> str:
    """The training steps, split as "S + REST warm" for a run warm-started (fresh optimizers) from step S."""
    if "warm_start_step" not in row:
        return f"{row['step']:,}"
    return f"{row['warm_start_step']:,} + {row['step'] - row['warm_start_step']:,} warm"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README table: one row per model; a test bits/dim column when a row has one, a class accuracy column
    when a row is conditional."""
    bits = any(row.get("test_bits_per_dim") is not None for row in rows)
    classes = any(row.get("class_accuracy") is not None for row in rows)
    lines = [("| model | steps | training | sampling img/s | FID | KID ×10³ | precision | recall | FID (fashion-cnn) "
              "| KID ×10³ (fashion-cnn) | IS (fashion-cnn) | " + "class accuracy | " * classes
              + "bits/dim (test) | " * bits + "anchor FID |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
             + "---: | " * (classes + bits) + "--- |"]
    for row in rows:
        nll, accuracy = row.get("test_bits_per_dim"), row.get("class_accuracy")
        bits_cell = (f"| {nll:.3f} " if nll is not None else "| — ") if bits else ""
        class_cell = (f"| {accuracy:.3f} " if accuracy is not None else "| — ") if classes else ""
        fcnn = row["fashion_cnn"]
        cost = (f"| `{row['model']}` | {steps_cell(row)} | {row['train_s'] / 60:.1f} min "
                f"| {row['sample_img_per_s']:,.0f} " if "step" in row else f"| {row['model']} | — | — | — ")
        lines.append(
            cost + inception_cells(row["inception"]) + f"| {fcnn['fid']:.2f} | {1e3 * fcnn['kid_mean']:.0f} ± {1e3 * fcnn['kid_std']:.0f} "
            f"| {fcnn['is_mean']:.2f} ± {fcnn['is_std']:.2f} {class_cell}{bits_cell}{anchor_cell(row)}|")
    return "\n".join(lines)


def ship(runs: Path, rows: list[dict[str, Any]], out: Path) -> None:
    """Weights-only checkpoints, last sample grids and training histories of each run folder into ``out/FOLDER/``,
    the rows into ``out/results.json`` (a row replaces the row of its name in place; rows of new names follow the
    others)."""
    for name, step in {row["checkpoint"]: row["step"] for row in rows}.items():
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        export_weights(runs / name, folder)
        write_bytes(folder / "samples.png", (runs / name / f"samples-{step:08d}.png").read_bytes())
        write_bytes(folder / "history.json", (runs / name / "history.json").read_bytes())
    results = out / "results.json"
    merged = {row["model"]: row for row in json.loads(results.read_text())} if results.is_file() else {}
    merged.update((row["model"], row) for row in rows)
    write_bytes(results, (json.dumps(list(merged.values()), indent=1) + "\n").encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="folder with the run folders and the scores of reference_models.sh")
    parser.add_argument("rows", nargs="+", help="NAME or NAME=FOLDER:KEY=VALUE,... (sampling options), or "
                        "shipped:NAME (the row of --results, not measured), in table order")
    parser.add_argument("--ship", type=Path, default=None, help="write weights-only checkpoints and grids here")
    parser.add_argument("--results", type=Path, default=SHIPPED_RESULTS,
                        help="the results.json of shipped:NAME rows (default: models/pretrained/results.json)")
    args = parser.parse_args(argv)
    measured = {text: read_results(args.runs, Row.parse(text)) for text in args.rows
                if not text.startswith("shipped:")}
    if args.ship is not None:
        ship(args.runs, list(measured.values()), args.ship)
    rows = [measured[text] if text in measured else shipped_row(args.results, text.removeprefix("shipped:"))
            for text in args.rows]
    print(markdown([*rows, real_data_row()]))


if __name__ == "__main__":
    main()
