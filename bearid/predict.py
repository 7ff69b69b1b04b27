"""CPU inference on the exported model: the validation preprocessing, then a plain forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .export import load_model


class Predictor:
    """Loads an exported model once; predicts images or files in batches."""

    def __init__(self, model_dir: Path | str):
        self.model, self.meta = load_model(Path(model_dir))
        self.classes: list[str] = self.meta["classes"]
        self.size: int = self.meta["img_size"]
        self.mean = torch.tensor(self.meta["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(self.meta["std"]).view(1, 3, 1, 1)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """As verify + validation in training: EXIF orientation, RGB, squish-resize (bilinear)."""
        image = (ImageOps.exif_transpose(image) or image).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)

    @torch.inference_mode()
    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Class probabilities, one row per image."""
        batch = torch.stack([self.preprocess(im) for im in images]).float().div_(255)
        logits = self.model((batch - self.mean) / self.std)
        return torch.softmax(logits, dim=1).numpy()

    def predict_files(self, paths: Iterable[Path | str], batch_size: int = 64) -> np.ndarray:
        paths = list(paths)
        out = [np.zeros((0, len(self.classes)), dtype=np.float32)]
        for i in range(0, len(paths), batch_size):
            images = []
            for p in paths[i:i + batch_size]:
                with Image.open(p) as im:
                    im.load()
                    images.append(im)
            out.append(self.predict_images(images))
        return np.concatenate(out)
