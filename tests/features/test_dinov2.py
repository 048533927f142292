"""The DINOv2 extractor: features of official-layout weights against an independent plain implementation, the
official position-embedding resize, dgm-eval's preprocessing, batch invariance, weights errors, options and the
fd_dinov2 reporting. Tiny random networks (width 32, depth 2) saved in the release checkpoint's layout."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

import genmetrics
from genmetrics.config import DINOV2_ARCHS
from genmetrics.errors import ConfigError, StatsError, WeightsError
from genmetrics.features import dinov2
from genmetrics.features.dinov2 import ARCHS, DINOV2_WEIGHTS_ENV, Dinov2Arch, Dinov2Extractor, resize_pos_embed
from genmetrics.features.extract import extract_features
from genmetrics.features.registry import Dinov2Config, extractor_config
from genmetrics.features.weights import sha256_file
from genmetrics.io.images import open_source
from genmetrics.metrics.fid import fid_from_features
from genmetrics.report import comparison_table, to_table
from genmetrics_cli.main import cli
from tests.helpers import random_images

TINY = Dinov2Arch("vits14", embed_dim=32, depth=2, num_heads=2)  # 37 x 37 position grid, as the release
TINY_SWIGLU = Dinov2Arch("vitg14", embed_dim=48, depth=2, num_heads=2, ffn="swiglu")  # hidden (128 + 7) // 8 * 8


def release_layout(d: int, depth: int, hidden: int, swiglu: bool = False, grid: int = 37) -> dict[str, tuple]:
    """The official checkpoint's tensors (dinov2_vit*14_pretrain.pth), written out independently of the module."""
    layout = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + grid * grid, d), "mask_token": (1, d),
              "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i}."
        layout.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d),
                       b + "attn.qkv.bias": (3 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                       b + "ls1.gamma": (d,), b + "norm2.weight": (d,), b + "norm2.bias": (d,)})
        if swiglu:
            layout.update({b + "mlp.w12.weight": (2 * hidden, d), b + "mlp.w12.bias": (2 * hidden,),
                           b + "mlp.w3.weight": (d, hidden), b + "mlp.w3.bias": (d,)})
        else:
            layout.update({b + "mlp.fc1.weight": (hidden, d), b + "mlp.fc1.bias": (hidden,),
                           b + "mlp.fc2.weight": (d, hidden), b + "mlp.fc2.bias": (d,)})
        layout[b + "ls2.gamma"] = (d,)
    return {**layout, "norm.weight": (d,), "norm.bias": (d,)}


def random_state(layout: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of ``layout``: LayerScale and norm weights away from 1 so that they matter."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("gamma"):
            state[key] = torch.rand(shape, generator=g) + 0.25
        elif "norm" in key and key.endswith("weight"):
            state[key] = 1 + 0.3 * torch.randn(shape, generator=g)
        elif len(shape) > 1 and key not in ("cls_token", "pos_embed", "mask_token"):
            state[key] = torch.randn(shape, generator=g) / math.prod(shape[1:]) ** 0.5
        else:
            state[key] = 0.3 * torch.randn(shape, generator=g)
    return state


TINY_LAYOUT = release_layout(32, 2, 128)
SWIGLU_LAYOUT = release_layout(48, 2, 128, swiglu=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_tiny_pretrain.pth"
    torch.save(random_state(TINY_LAYOUT), path)
    return str(path)


@pytest.fixture(scope="module")
def swiglu_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_tiny_swiglu_pretrain.pth"
    torch.save(random_state(SWIGLU_LAYOUT, seed=1), path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(weights) -> Dinov2Extractor:
    return Dinov2Extractor(TINY, weights)


@pytest.fixture
def tiny_archs(monkeypatch):
    """``dinov2_arch="vits14"`` builds TINY (so the options, score, CLI and compare paths run in milliseconds)."""
    monkeypatch.setitem(ARCHS, "vits14", TINY)


def bicubic_offset(grid: np.ndarray, out: int) -> np.ndarray:
    """(M, M, D) -> (out, out, D): the official interpolate_pos_encoding written out -- PyTorch's bicubic (A = -0.75,
    borders clamped, align_corners False) at the scale factor (out + 0.1) / M, whose source coordinates are
    (i + 0.5) * M / (out + 0.1) - 0.5, computed in float32 as PyTorch does for float32 inputs (the rest in float64)."""
    m = grid.shape[0]
    step = np.float32(1.0 / ((out + dinov2.INTERPOLATE_OFFSET) / m))

    def cubic(t: float) -> np.ndarray:
        a = -0.75
        x = np.abs(np.array([t + 1, t, 1 - t, 2 - t]))
        return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a)

    weights = np.zeros((out, m))
    for i in range(out):
        src = step * np.float32(i + 0.5) - np.float32(0.5)
        base = math.floor(src)
        for tap, w in zip(range(base - 1, base + 3), cubic(float(src - np.float32(base)))):
            weights[i, min(max(tap, 0), m - 1)] += w
    return np.einsum("ia,jb,abd->ijd", weights, weights, grid)


def plain_features(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int) -> torch.Tensor:
    """The official DinoVisionTransformer's forward, written plainly: conv patch embedding, explicit softmax
    attention, LayerScale as a multiply, every token through every block, final norm, CLS token. (B, D)."""
    d = state["cls_token"].shape[-1]
    ln = lambda x, key: F.layer_norm(x, (d,), state[key + ".weight"], state[key + ".bias"], eps=1e-6)  # noqa: E731
    tokens = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=14)
    x = torch.cat([state["cls_token"].expand(len(x), 1, d), tokens.flatten(2).transpose(1, 2)], dim=1)
    m = math.isqrt(state["pos_embed"].shape[1] - 1)
    grid = bicubic_offset(state["pos_embed"][0, 1:].double().reshape(m, m, d).numpy(), 16)
    x = x + torch.cat([state["pos_embed"][0, :1], torch.from_numpy(grid).float().reshape(256, d)])
    b, n = x.shape[:2]
    for i in range(sum(key.endswith("ls1.gamma") for key in state)):
        w = lambda name: state[f"blocks.{i}.{name}"]  # noqa: E731
        q, k, v = (ln(x, f"blocks.{i}.norm1") @ w("attn.qkv.weight").T + w("attn.qkv.bias")).reshape(
            b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(b, n, d)
        x = x + (mixed @ w("attn.proj.weight").T + w("attn.proj.bias")) * w("ls1.gamma")
        h = ln(x, f"blocks.{i}.norm2")
        if f"blocks.{i}.mlp.w12.weight" in state:
            gate, value = (h @ w("mlp.w12.weight").T + w("mlp.w12.bias")).chunk(2, dim=-1)
            h = (F.silu(gate) * value) @ w("mlp.w3.weight").T + w("mlp.w3.bias")
        else:
            h = F.gelu(h @ w("mlp.fc1.weight").T + w("mlp.fc1.bias")) @ w("mlp.fc2.weight").T + w("mlp.fc2.bias")
        x = x + h * w("ls2.gamma")
    return ln(x, "norm")[:, 0]


def dgm_eval_transform(image: np.ndarray, clean: bool = False) -> torch.Tensor:
    """dgm-eval's DINOv2Encoder.transform on the PIL image of ``image`` (its resizer.pil_resize for clean)."""
    pil = Image.fromarray(image)
    if clean:
        x = np.array(pil.convert("RGB")).astype(np.float32)
        channels = [np.asarray(Image.fromarray(x[:, :, c], mode="F").resize((224, 224), resample=Image.BICUBIC))
                    .clip(0, 255).reshape(224, 224, 1) for c in range(3)]
        pixels = T.functional.to_tensor(np.concatenate(channels, axis=2).astype(np.float32)) / 255
    else:
        pixels = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor()])(pil)
    return T.Normalize(np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))(pixels)


# --- the network ----------------------------------------------------------------------------------------------

def test_the_release_layout_is_what_the_architectures_expect():
    """vits14's 175 tensors are those of the official dinov2_vits14 (measured on the official module); ViT-g/14's
    SwiGLU hidden width is the official (int(6144 * 2 / 3) + 7) // 8 * 8 = 4096."""
    assert ARCHS["vits14"].shapes() == release_layout(384, 12, 1536) and len(ARCHS["vits14"].shapes()) == 175
    assert ARCHS["vitl14"].shapes() == release_layout(1024, 24, 4096)
    assert ARCHS["vitg14"].shapes() == release_layout(1536, 40, 4096, swiglu=True)
    assert TINY.shapes() == TINY_LAYOUT and TINY_SWIGLU.shapes() == SWIGLU_LAYOUT
    assert tuple(ARCHS) == DINOV2_ARCHS  # the CLI's and the config's choices


def test_position_embedding_is_resized_as_the_official_code():
    """37 x 37 -> 16 x 16 at the scale factor 16.1 / 37 (the 0.1 offset), no antialias: equal to the float64 formula;
    timm's resample_abs_pos_embed (output size, antialias) and a plain size-16 bicubic are other functions."""
    from timm.layers import resample_abs_pos_embed

    pos = random_state(TINY_LAYOUT)["pos_embed"]
    ours = resize_pos_embed(pos, 224, 224, 14)
    assert ours.shape == (1, 257, 32) and torch.equal(ours[:, 0], pos[:, 0])
    expected = bicubic_offset(pos[0, 1:].double().reshape(37, 37, 32).numpy(), 16).reshape(256, 32)
    assert np.abs(ours[0, 1:].double().numpy() - expected).max() <= 1e-6
    timm = resample_abs_pos_embed(pos, [16, 16], num_prefix_tokens=1)
    by_size = F.interpolate(pos[:, 1:].reshape(1, 37, 37, 32).permute(0, 3, 1, 2), size=(16, 16), mode="bicubic")
    assert (timm - ours).abs().max() > 1e-2
    assert (by_size.permute(0, 2, 3, 1).reshape(1, 256, 32) - ours[:, 1:]).abs().max() > 1e-3
    assert resize_pos_embed(pos, 518, 518, 14) is pos  # the release's own grid: as it is, as the official code


@pytest.mark.parametrize("arch, layout, fixture", [(TINY, TINY_LAYOUT, "weights"),
                                                   (TINY_SWIGLU, SWIGLU_LAYOUT, "swiglu_weights")])
def test_features_equal_a_plain_implementation(arch, layout, fixture, request):
    path = request.getfixturevalue(fixture)
    extractor = Dinov2Extractor(arch, path)
    images = random_images(5, size=40, seed=7)
    x = torch.stack([extractor.preprocess(image) for image in images])
    ours = extractor.forward(x)["features"]
    expected = plain_features(torch.load(path, weights_only=True), x, arch.num_heads)
    assert ours.shape == (5, arch.embed_dim) and ours.dtype == torch.float32
    assert (ours - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max().item())
    assert not torch.allclose(ours.norm(dim=1), torch.ones(5))  # raw CLS features, not L2-normalised


def test_features_do_not_depend_on_the_batch(tiny):
    """Chunks of at most 4 images on single-threaded workers, the last block's CLS rows one image at a time:
    an image's features are the same bits in any batch (allowed: 1e-6)."""
    images = random_images(9, size=36, seed=8)
    runs = [extract_features(open_source(images), tiny, batch_size=size, progress=False, cache=None).features
            for size in (1, 2, 5, 9)]
    for features in runs[1:]:
        assert np.abs(features - runs[0]).max() <= 1e-6


def test_the_resized_position_embedding_is_computed_once_per_input_size(weights, monkeypatch):
    calls = []
    original = dinov2.resize_pos_embed
    monkeypatch.setattr(dinov2, "resize_pos_embed", lambda *args: calls.append(args[1:]) or original(*args))
    extractor = Dinov2Extractor(TINY, weights)
    x = torch.randn(6, 3, 224, 224)
    first = extractor.forward(x)["features"]
    assert torch.equal(extractor.forward(x)["features"], first) and calls == [(224, 224, 14)]
    extractor.trunk(torch.randn(1, 3, 112, 112))
    assert calls == [(224, 224, 14), (112, 112, 14)]


# --- preprocessing --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resize", ["pil-bicubic", "clean"])
def test_preprocessing_is_dgm_evals(tiny, weights, resize):
    extractor = tiny if resize == "pil-bicubic" else Dinov2Extractor(TINY, weights, resize="clean")
    for image in (random_images(1, size=37, seed=9)[0], random_images(1, size=300, seed=10)[0][:, :251]):
        ours = extractor.preprocess(image)
        assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
        assert torch.equal(ours, dgm_eval_transform(image, clean=resize == "clean"))
    assert extractor.spec.resize == resize


# --- weights --------------------------------------------------------------------------------------------------

def test_no_weights_is_an_error_saying_what_to_pass(monkeypatch):
    monkeypatch.delenv(DINOV2_WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError, match=r"^no DINOv2 weights given: pass dinov2_weights=PATH \(or set "
                                           r"GENMETRICS_DINOV2_WEIGHTS\) to the official release checkpoint "
                                           r"dinov2_vitl14_pretrain\.pth .*genmetrics never downloads"):
        Dinov2Extractor()
    with pytest.raises(WeightsError, match=r"DINOv2 weights '/nonexistent/x.pth' \(from dinov2_weights=...\) do not "
                                           r"exist; pass dinov2_weights=PATH"):
        Dinov2Extractor("vitb14", "/nonexistent/x.pth")


def test_weights_from_the_environment_and_safetensors_give_the_same_features(tiny, weights, tmp_path, monkeypatch):
    monkeypatch.setenv(DINOV2_WEIGHTS_ENV, weights)
    from_env = Dinov2Extractor(TINY)
    assert from_env.weights_path == weights and from_env.spec == tiny.spec
    safetensors_path = tmp_path / "tiny.safetensors"
    save_file({key: value.contiguous() for key, value in torch.load(weights, weights_only=True).items()},
              safetensors_path)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in torch.load(weights, weights_only=True).items()}}, wrapped)
    x = torch.randn(2, 3, 224, 224)
    for path in (safetensors_path, wrapped):
        other = Dinov2Extractor(TINY, str(path))
        assert torch.equal(other.forward(x)["features"], tiny.forward(x)["features"])
        assert other.spec.weights_sha256 == sha256_file(path) != tiny.spec.weights_sha256


def test_weights_of_another_architecture_name_the_first_mismatching_key(weights, tiny_archs):
    with pytest.raises(WeightsError, match=r"do not fit dinov2_arch=vitl14: the file holds cls_token as \(1, 1, 32\) "
                                           r"where vitl14 has \(1, 1, 1024\) \(35 tensors, vitl14 has 343\); it is a "
                                           r"vits14 checkpoint: pass dinov2_arch=vits14"):
        Dinov2Extractor("vitl14", weights)


def test_truncated_incomplete_or_foreign_weights_are_refused(weights, tmp_path):
    data = open(weights, "rb").read()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"cannot read DINOv2 weights .*truncated.pth.*: the file is truncated or "
                                           r"not a torch/safetensors checkpoint; pass dinov2_weights=PATH"):
        Dinov2Extractor(TINY, str(tmp_path / "truncated.pth"))
    state = torch.load(weights, weights_only=True)
    cases = {"missing": ({k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.weight"},
                         r"the file lacks blocks\.1\.mlp\.fc2\.weight \(32, 128\) \(34 tensors, vits14 has 35\)"),
             "registers": ({**state, "register_tokens": torch.zeros(1, 4, 32)},
                           r"the file holds register_tokens \(1, 4, 32\), which vits14 has not"),
             "shape": ({**state, "blocks.0.ls2.gamma": torch.ones(16)},
                       r"the file holds blocks\.0\.ls2\.gamma as \(16,\) where vits14 has \(32,\)")}
    for name, (bad, message) in cases.items():
        torch.save(bad, tmp_path / f"{name}.pth")
        with pytest.raises(WeightsError, match=message):
            Dinov2Extractor(TINY, str(tmp_path / f"{name}.pth"))
    torch.save({"epoch": 3}, tmp_path / "not_a_state_dict.pth")
    with pytest.raises(WeightsError, match="hold no state dict of tensors"):
        Dinov2Extractor(TINY, str(tmp_path / "not_a_state_dict.pth"))


# --- options, spec, reporting ---------------------------------------------------------------------------------

def test_the_config_takes_its_options_and_refuses_the_others():
    assert extractor_config("dinov2") == Dinov2Config() == Dinov2Config("vitl14", None, "pil-bicubic")
    assert extractor_config("dinov2", dinov2_arch="vitb14", dinov2_weights="w.pth", resize="clean") == \
        Dinov2Config(arch="vitb14", weights="w.pth", resize="clean")
    with pytest.raises(ConfigError, match=r"^precision=\.\.\. does not apply to extractor=dinov2: drop it \(this "
                                          r"extractor takes dinov2_arch=\.\.\., dinov2_weights=\.\.\., "
                                          r"resize=\.\.\.\)"):
        extractor_config("dinov2", precision="bf16")
    with pytest.raises(ConfigError, match=r"^dinov2_weights=\.\.\. does not apply to extractor=inception"):
        extractor_config("inception", dinov2_weights="w.pth")
    with pytest.raises(ConfigError, match="unknown dinov2_arch=vitx14; choose one of vits14, vitb14, vitl14, vitg14"):
        Dinov2Config(arch="vitx14")
    with pytest.raises(ConfigError, match="unknown resize=tf1 for extractor=dinov2; choose one of pil-bicubic, clean"):
        extractor_config("dinov2", resize="tf1")
    with pytest.raises(ConfigError, match="unknown resize=pil-bicubic; choose one of tf1, clean"):
        extractor_config("inception", resize="pil-bicubic")


def test_spec_records_architecture_weights_and_resize(tiny, weights):
    spec = tiny.spec
    assert (spec.name, spec.dim, spec.image_size, spec.resize, spec.precision) == \
        ("dinov2-vits14", 32, 224, "pil-bicubic", "float32")
    assert spec.weights_sha256 == sha256_file(weights) and not tiny.has_logits and tiny.weights_path == weights


def test_score_reports_fd_dinov2_and_kid_pr_dc_cmmd(weights, tiny_archs, tmp_path):
    gen, ref = random_images(12, size=32, seed=11), random_images(12, size=32, seed=12)
    options = {"extractor": "dinov2", "dinov2_arch": "vits14", "dinov2_weights": weights, "progress": False}
    result = genmetrics.score(gen, ref, "fid,kid,pr,dc,cmmd", kid_subset_size=6, cmmd_sigma=5.0, **options)
    assert list(result.metrics) == ["fd_dinov2", "kid_mean", "kid_std", "precision", "recall", "density", "coverage",
                                    "cmmd"]
    feats = [genmetrics.compute_stats(x, features=True, **options).features for x in (gen, ref)]
    assert result.metrics["fd_dinov2"] == pytest.approx(fid_from_features(*feats), rel=1e-9)
    assert to_table(result).splitlines()[0].startswith("FD_DINOv2 ")
    assert json.loads(json.dumps(result.to_dict()))["provenance"]["extractor"]["name"] == "dinov2-vits14"
    evaluator = genmetrics.Evaluator(ref, "fid,cmmd", extractor="dinov2", dinov2_arch="vits14",
                                     dinov2_weights=weights, cmmd_sigma=5.0)
    evaluator.update(gen)
    assert evaluator.compute().metrics == pytest.approx({key: result.metrics[key] for key in ("fd_dinov2", "cmmd")})
    comparison = genmetrics.compare(gen, random_images(12, size=32, seed=13), ref, "fid", bootstrap_replicates=10,
                                    fail_if=["fid>+1000"], **options)
    assert comparison.rows[0].metric == "fid" and comparison.rows[0].baseline == pytest.approx(
        result.metrics["fd_dinov2"], rel=1e-9)
    assert "FD_DINOv2 ↓" in comparison_table(comparison)


def test_stats_from_other_dinov2_weights_are_refused(weights, tiny_archs, tmp_path):
    other = tmp_path / "other.pth"
    torch.save(random_state(TINY_LAYOUT, seed=5), other)
    images = random_images(4, size=32, seed=14)
    stats = tmp_path / "ref.npz"
    genmetrics.compute_stats(images, stats, extractor="dinov2", dinov2_arch="vits14", dinov2_weights=weights,
                             progress=False)
    with pytest.raises(StatsError, match="another extractor setup.*weights_sha256"):
        genmetrics.score(images, str(stats), "fid", extractor="dinov2", dinov2_arch="vits14",
                         dinov2_weights=str(other), progress=False)


def test_cli_takes_the_dinov2_options(weights, tiny_archs, tmp_path, monkeypatch):
    monkeypatch.delenv(DINOV2_WEIGHTS_ENV, raising=False)
    np.save(tmp_path / "gen.npy", random_images(6, size=32, seed=15))
    np.save(tmp_path / "ref.npy", random_images(6, size=32, seed=16))
    args = ["score", str(tmp_path / "gen.npy"), str(tmp_path / "ref.npy"), "--metrics", "fid", "--extractor", "dinov2",
            "--dinov2-arch", "vits14", "--no-progress"]
    done = CliRunner().invoke(cli, [*args, "--dinov2-weights", weights, "--resize", "clean", "--json"])
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert list(found["metrics"]) == ["fd_dinov2"] and found["provenance"]["extractor"]["resize"] == "clean"
    missing = CliRunner().invoke(cli, args)
    assert missing.exit_code != 0 and "pass --dinov2-weights PATH (or set GENMETRICS_DINOV2_WEIGHTS)" in missing.output
    help_text = CliRunner().invoke(cli, ["score", "--help"]).output
    assert "--dinov2-arch" in help_text and "dinov2 (DINOv2" in help_text
