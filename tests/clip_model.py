"""A tiny random-weight open_clip model, saved like a user's checkpoint (nothing is downloaded)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def save_tiny_clip(folder: Path, seed: int = 0, config: dict = TINY_CLIP_CONFIG, name: str = "tiny-clip"
                   ) -> tuple[Path, Path]:
    """Write ``folder/name.json`` (the model config) and ``folder/name.pt`` (a seeded random state dict)."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = folder / f"{name}.json", folder / f"{name}.pt"
    config_path.write_text(json.dumps(config))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = open_clip.CLIP(**config)
    torch.save(model.state_dict(), weights_path)
    return config_path, weights_path


def open_clip_reference(config_path: str, weights_path: str, monkeypatch) -> tuple[torch.nn.Module, Any, Any]:
    """open_clip's own (model, eval preprocess, tokenizer) for the saved model, built by ``create_model_and_transforms``
    from the local file (the config is registered under a test name for the duration of the test)."""
    name = f"genmetrics-test-{Path(config_path).stem}"
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, name, json.loads(Path(config_path).read_text()))
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(weights_path))
    return model.eval(), preprocess, open_clip.get_tokenizer(name)


def reference_clip_scores(reference: tuple[torch.nn.Module, Any, Any], images: np.ndarray, captions: list[str],
                          w: float = 2.5) -> np.ndarray:
    """The CLIPScore formula by hand on open_clip's embeddings: w * max(0, cos(E_img, E_txt)), per image."""
    model, preprocess, tokenizer = reference
    with torch.no_grad():
        image_embeds = model.encode_image(torch.stack([preprocess(Image.fromarray(image)) for image in images]))
        text_embeds = model.encode_text(tokenizer(captions))
    cosine = (image_embeds * text_embeds).sum(1) / (image_embeds.norm(dim=1) * text_embeds.norm(dim=1))
    return w * np.maximum(cosine.double().numpy(), 0.0)
