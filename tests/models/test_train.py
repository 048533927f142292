"""The training loop: deterministic batches, exact resumption, evaluation through genmetrics, outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

import genmetrics
from genmetrics.errors import ConfigError
from genmetrics_models.base import Generator
from genmetrics_models.checkpoint import load_checkpoint
from genmetrics_models.gan import DCGAN
from genmetrics_models.registry import build_model
from genmetrics_models.train import BatchSampler, TrainOptions, draw, sample_grid, sampler, train
from tests.models.conftest import TINY, seeded

QUIET = {"eval_samples": 0, "log_every": 1, "progress": False}


def _model(name: str) -> Generator:
    return build_model(name, TINY[name], generator=seeded(0))


def _tensors(folder, step: int) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(folder / f"step-{step:08d}.safetensors")


def test_batches_depend_on_seed_and_step_only():
    sampler_a, sampler_b = BatchSampler(10, 3, seed=4), BatchSampler(10, 3, seed=4)
    epoch = [sampler_a(step) for step in range(3)]  # 10 // 3 = 3 batches per epoch, one image left out
    assert len(set(torch.cat(epoch).tolist())) == 9
    assert torch.equal(sampler_b(2), epoch[2]) and torch.equal(sampler_b(0), epoch[0])  # any order
    assert not torch.equal(sampler_a(3), epoch[0])  # the next epoch is reshuffled
    assert not torch.equal(BatchSampler(10, 3, seed=5)(0), epoch[0])


@pytest.mark.parametrize("name", ["dcgan", "wgan-gp", "ae", "vqvae", "ddpm"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, name):
    straight = train(name, tmp_path / "a", TrainOptions(steps=4, **QUIET), dataset="digits", hparams=TINY[name],
                     seed=3)
    train(name, tmp_path / "b", TrainOptions(steps=2, **QUIET), dataset="digits", hparams=TINY[name], seed=3)
    resumed = train(name, tmp_path / "b", TrainOptions(steps=4, **QUIET))  # dataset, hparams, seed from the run
    assert resumed.losses == straight.losses and [row["step"] for row in resumed.losses] == [1, 2, 3, 4]
    a, b = _tensors(tmp_path / "a", 4), _tensors(tmp_path / "b", 4)
    assert a.keys() == b.keys() and any(key.startswith("optim.") for key in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not (tmp_path / "b" / "step-00000002.json").exists()


def test_resuming_with_other_settings_is_refused(tmp_path):
    train("dcgan", tmp_path, TrainOptions(steps=1, **QUIET), dataset="digits", hparams=TINY["dcgan"])
    for kwargs, message in [({"model_name": "vae"}, r"holds a run with model 'dcgan' \(at step 1\)"),
                            ({"dataset": "fashion-mnist"}, r"holds a run with dataset 'digits'"),
                            ({"seed": 1}, "holds a run with seed 0"),
                            ({"hparams": {"width": 16}}, "holds a run with width=8")]:
        with pytest.raises(ConfigError, match=message):
            train(**{"model_name": "dcgan", **kwargs}, out=tmp_path, options=TrainOptions(steps=2, **QUIET))
    # Repeating the run's own settings is fine; rows of history past the checkpoint are dropped.
    history = json.loads((tmp_path / "history.json").read_text())
    history["losses"].append({"step": 7, "d_loss": 0.0})
    (tmp_path / "history.json").write_text(json.dumps(history))
    resumed = train("dcgan", tmp_path, TrainOptions(steps=2, **QUIET), dataset="digits", hparams=TINY["dcgan"],
                    seed=0)
    assert [row["step"] for row in resumed.losses] == [1, 2]


def test_a_warm_start_continues_from_the_weights_with_fresh_optimizers(tmp_path):
    """The new run starts at the checkpoint's step from its weights (the EMA included), with fresh optimizers and a
    recorded origin; a weights-only checkpoint (a shipped one) will do; the architecture must stay."""
    train("ddpm", tmp_path / "a", TrainOptions(steps=2, **QUIET), dataset="digits", hparams=TINY["ddpm"], seed=3)
    warm = train("ddpm", tmp_path / "b", TrainOptions(steps=4, init_from=str(tmp_path / "a"), **QUIET),
                 hparams={"lr": 1e-4})
    assert [row["step"] for row in warm.losses] == [3, 4]
    config = json.loads((tmp_path / "b" / "step-00000004.json").read_text())
    assert config["run"]["init_from"] == str(tmp_path / "a") and config["dataset"] == "digits"
    assert config["seed"] == 3 and config["hparams"]["lr"] == 1e-4
    assert _tensors(tmp_path / "b", 4)["model.ema_updates"].item() == 4  # the EMA went on from the start's 2
    straight = train("ddpm", tmp_path / "c", TrainOptions(steps=4, **QUIET), dataset="digits", hparams=TINY["ddpm"],
                     seed=3)
    assert warm.losses != straight.losses[2:]  # fresh Adam moments (and lr): not a resume
    again = train("ddpm", tmp_path / "b", TrainOptions(steps=5, **QUIET))  # the warm run resumes as any run
    assert [row["step"] for row in again.losses] == [3, 4, 5]
    grown = train("ddpm", tmp_path / "g", TrainOptions(steps=3, init_from=str(tmp_path / "a"), **QUIET),
                  hparams={"levels": 3})  # the one architecture change a warm start allows: growing the U-Net
    assert [row["step"] for row in grown.losses] == [3]
    with pytest.raises(ConfigError, match="channels change the architecture"):
        train("ddpm", tmp_path / "d", TrainOptions(steps=4, init_from=str(tmp_path / "a"), **QUIET),
              hparams={"channels": 16})
    with pytest.raises(ConfigError, match="holds a ddpm model on digits; warm-start the same model"):
        train("dcgan", tmp_path / "e", TrainOptions(steps=4, init_from=str(tmp_path / "a"), **QUIET))


def test_a_diverging_loss_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(DCGAN, "train_step", lambda self, images, labels, generator: {"d_loss": float("nan")})
    with pytest.raises(ConfigError, match=r"dcgan d_loss became nan at step 1; lower the learning rate "
                                          r"\(hparams=\{'lr': \.\.\.\}\) and train again in a new folder "
                                          r"\(out=FOLDER\)"):
        train("dcgan", tmp_path, TrainOptions(steps=3, **QUIET), dataset="digits", hparams=TINY["dcgan"])


def test_batch_size_must_fit_the_data(tmp_path):
    with pytest.raises(ConfigError, match=r"hparams=\{'batch_size': 1000\} \(x3 batches per step\) must be at least 2 "
                                          r"and fit in "
                                          r"the 1797 training images of digits"):
        train("wgan", tmp_path, TrainOptions(steps=1, **QUIET), dataset="digits",
              hparams={"batch_size": 1000, "n_critic": 3})


def test_draw_returns_the_images_an_evaluation_scores(tiny_extractor):
    model = _model("dcgan")
    fn = sampler(model, "digits")
    via_genmetrics = genmetrics.compute_stats(fn, num_samples=70, seed=3, extractor=tiny_extractor, features=True,
                                              progress=False, cache=False)
    images, labels = draw(model, "digits", 70, seed=3)
    assert images.shape == (70, 8, 8, 1) and labels is None
    direct = genmetrics.compute_stats(images, extractor=tiny_extractor, features=True, progress=False, cache=False)
    assert np.array_equal(via_genmetrics.features, direct.features)


def test_draw_cycles_given_labels_and_reports_drawn_ones():
    model = _model("cgan")
    images, labels = draw(model, "fashion-mnist", 70, seed=1, labels=[4, 7])
    assert images.shape == (70, 28, 28, 1) and labels.tolist() == [4, 7] * 35
    first_chunk = model.sample(64, seeded(1 * 1_000_003 + 0), [4, 7] * 32).numpy()  # chunk 0 of seed 1
    assert np.array_equal(images[:64], first_chunk)
    _, drawn = draw(model, "fashion-mnist", 70, seed=1)
    assert drawn.dtype == np.int64 and set(drawn.tolist()) <= set(range(10)) and len(set(drawn.tolist())) > 5


def test_conditional_grid_has_a_column_per_class():
    grid = sample_grid(_model("cgan"), seed=0)
    assert grid.shape == (8 * 30 + 2, 10 * 30 + 2) and grid.dtype == np.uint8
    assert sample_grid(_model("dcgan"), seed=0).shape == (242, 242)


def test_evaluations_go_through_genmetrics_and_land_in_the_outputs(tmp_path, tiny_extractor, digits_reference):
    options = TrainOptions(steps=4, eval_every=2, eval_samples=24, eval_ref=digits_reference,
                           eval_extractor=tiny_extractor, log_every=3, progress=False)
    history = train("dcgan", tmp_path, options, dataset="digits", hparams=TINY["dcgan"], seed=2)
    assert [row["step"] for row in history.metrics] == [2, 4]
    assert [row["step"] for row in history.losses] == [2, 3, 4]  # every 3 steps, and at each checkpoint
    assert set(history.metrics[-1]) == {"step", "fid", "kid_mean", "kid_std", "precision", "recall"}
    images, _ = draw(load_checkpoint(tmp_path), "digits", 24, seed=2)
    expected = genmetrics.score(images, digits_reference, "fid,kid,pr", seed=2, extractor=tiny_extractor,
                                progress=False).metrics
    assert history.metrics[-1] == pytest.approx({"step": 4, **expected}, rel=1e-9)  # streamed chunk by chunk
    assert expected["fid"] > 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["history.json", "metrics.csv", "plot.png", "samples-00000002.png", "samples-00000004.png",
                     "step-00000004.json", "step-00000004.safetensors"]
    csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "step,fid,kid_mean,kid_std,precision,recall" and csv_lines[2].startswith("4,")
    assert json.loads((tmp_path / "history.json").read_text())["metrics"] == history.metrics
    assert Image.open(tmp_path / "samples-00000004.png").size == (242, 242)
    with Image.open(tmp_path / "plot.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 4 * plot.size[1]  # losses + 4 metric panels side by side
