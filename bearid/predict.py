"""CPU inference on the exported model: the validation preprocessing, then a plain forward pass.

fastai's `learn.predict` builds a DataLoader per call; here an image becomes a
tensor with the same steps as validation in training (RGB, squish-resize with
bilinear resampling, /255, normalise) and a batch goes straight to the network.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .export import load_model
from .images import PIL_FORMATS

# Decoding peaks at the decoded image (up to 4 bytes a pixel: RGBA, CMYK) plus one converted copy.
PEAK_BYTES_PER_PIXEL = 8
DRAFT_GAP = 2  # a JPEG is DCT-scaled to no less than this many times the model's input size
ORIENTATION = 0x0112


class BadImage(ValueError):
    """Bytes that are not a usable image; `kind`: empty, not_image, bomb, over_budget or corrupt."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Predictor:
    """Loads an exported model once; predicts images or files in batches.

    `threads` sets torch's intra-op threads (process-wide); `channels_last`
    speeds up convolutions on a CPU at no cost in accuracy.
    """

    def __init__(self, model_dir: Path | str, threads: int | None = None,
                 channels_last: bool = True, device: str = "cpu"):
        if threads:
            torch.set_num_threads(threads)
        self.model_dir = Path(model_dir)
        model, self.meta = load_model(self.model_dir)
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.network = self.model  # what forward calls: the server may put another runtime here
        self.classes: list[str] = self.meta["classes"]
        self.size: int = self.meta["img_size"]
        self.mean = torch.tensor(self.meta["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.meta["std"], device=self.device).view(1, 3, 1, 1)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A uint8 (3, size, size) tensor, as validation sees the image in training.

        EXIF orientation first (the verify stage bakes it into training images),
        then RGB and fastai's Resize(method=Squish): the whole image, bilinear, to size x size.
        No step copies a full-size image it does not have to.
        """
        if image.getexif().get(ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = image.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)

    def decode(self, data: bytes, max_pixels: int | None = None) -> torch.Tensor:
        """Untrusted bytes (an upload, a file) as the model's input, or BadImage saying what is wrong.

        `max_pixels`: the most pixels decoded for this image. A JPEG is first
        DCT-scaled toward the input size (Pillow's draft), which also makes it
        cheaper; an image that is still larger is refused before it is decoded.
        """
        if not data:
            raise BadImage("empty", "empty file: 0 bytes")
        try:
            with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as image:
                limit = Image.MAX_IMAGE_PIXELS
                if limit and image.width * image.height > limit:
                    raise BadImage("bomb", f"decompression bomb: {image.width}x{image.height} pixels "
                                           f"is more than Pillow's limit of {limit}")
                if image.format == "JPEG":
                    image.draft("RGB", (self.size * DRAFT_GAP, self.size * DRAFT_GAP))
                if max_pixels and image.width * image.height > max_pixels:
                    raise BadImage("over_budget", f"{image.width}x{image.height} pixels is more than this "
                                                  f"server decodes ({max_pixels} pixels); send a smaller image")
                return self.preprocess(image)
        except BadImage:
            raise
        except Image.DecompressionBombError as exc:
            raise BadImage("bomb", f"decompression bomb: {exc}") from None
        except UnidentifiedImageError:
            raise BadImage("not_image", f"not an image, or not one of {', '.join(PIL_FORMATS)}") from None
        except Exception as exc:  # Pillow's decoders raise many types on malformed data
            raise BadImage("corrupt", f"truncated or corrupt image: {exc}") from None

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Class probabilities for a uint8 (n, 3, size, size) batch, one row per image."""
        x = batch.to(self.device).float().div_(255).sub_(self.mean).div_(self.std)
        logits = self.network(x.contiguous(memory_format=self.memory_format))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Class probabilities, one row per image."""
        if not images:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self.forward(torch.stack([self.preprocess(im) for im in images]))

    def predict_files(self, paths: Iterable[Path | str], batch_size: int = 64) -> np.ndarray:
        paths = list(paths)
        out = [np.zeros((0, len(self.classes)), dtype=np.float32)]
        for i in range(0, len(paths), batch_size):
            batch = []
            for p in paths[i:i + batch_size]:
                with Image.open(p) as im:
                    batch.append(self.preprocess(im))
            out.append(self.forward(torch.stack(batch)))
        return np.concatenate(out)

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable (label, probability) pairs of one row, most probable first."""
        order = np.argsort(-probs, kind="stable")[:max(1, k)]
        return [(self.classes[i], float(probs[i])) for i in order]
