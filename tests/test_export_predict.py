"""export.py + predict.py: safetensors + JSON round trip (no pickle), and CPU prediction equal to
a manual forward pass and to fastai's `learn.predict`."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import shutil
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from helpers import MODEL_CLASSES, MODEL_STATS, export_untrained, project_params

from bearid.export import META, WEIGHTS, ModelError, load_model, meta_hash, read_meta, save_model
from bearid.learner import NORMALIZE, build_learner, dataloaders
from bearid.predict import BadImage, Predictor

CLASSES, STATS = MODEL_CLASSES, MODEL_STATS
P = project_params("train", img_size=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    return (*export_untrained(out, P.img_size), out)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, mode) in enumerate([((40, 30), "RGB"), ((32, 32), "RGB"), ((17, 50), "L"), ((64, 64), "RGBA")]):
        array = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8).squeeze()
        path = folder / f"{i}.png"
        Image.fromarray(array, mode).save(path)
        paths.append(path)
    return paths


def test_meta(exported):
    _, meta, out = exported
    on_disk = json.loads((out / META).read_text())
    assert on_disk == meta == read_meta(out)
    assert meta["arch"] == "resnet18" and meta["classes"] == CLASSES
    assert meta["img_size"] == 32 and meta["resize"] == "squish"
    assert meta["mean"] == STATS[0] and meta["std"] == STATS[1]
    assert meta["weights_sha256"] == hashlib.sha256((out / WEIGHTS).read_bytes()).hexdigest()
    assert meta["params"] == {**dataclasses.asdict(project_params("train")), "img_size": 32}
    assert meta["format"] == 2 and meta["weights"] == WEIGHTS
    revision = meta["git_revision"]
    assert revision is None or (len(revision) == 40 and int(revision, 16) >= 0)
    assert not list(out.glob(".*"))  # no temp files left


def test_weights_are_plain_safetensors(exported):
    model, _, out = exported
    state = load_file(out / WEIGHTS)
    assert set(state) == set(model.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_load_model_gives_identical_state(exported):
    model, meta, out = exported
    loaded, loaded_meta = load_model(out)
    assert loaded_meta == meta and not loaded.training
    original, again = model.state_dict(), loaded.state_dict()
    assert list(again) == list(original)
    for key in original:
        assert torch.equal(original[key], again[key]), key


def test_load_model_runs_no_pickle_and_predicts_as_the_saved_model(exported, monkeypatch):
    model, _, out = exported

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded, _ = load_model(out)
    monkeypatch.undo()

    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = model.eval()(x), loaded(x)
    assert not torch.allclose(expected[0], expected[1])  # inputs that tell models apart
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_load_model_refuses_weights_of_another_export(exported, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(exported[2], out)
    meta = read_meta(out)
    changed = {**meta, "weights_sha256": "0" * 64}
    (out / META).write_text(json.dumps({**changed, "meta_sha256": meta_hash(changed)}))
    with pytest.raises(ModelError, match="sha256 differs from model.json's weights_sha256"):
        load_model(out)


@pytest.fixture(scope="module")
def predictor(exported) -> Predictor:
    return Predictor(exported[2])


def test_predict_files_matches_manual_forward_pass(exported, predictor, images):
    model = exported[0]
    assert predictor.classes == CLASSES
    probs = predictor.predict_files(images, batch_size=3)  # two batches
    assert probs.shape == (len(images), len(CLASSES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    batch = []
    for path in images:
        image = Image.open(path).convert("RGB").resize((32, 32), Image.BILINEAR)
        batch.append(torch.tensor(np.array(image), dtype=torch.float32).permute(2, 0, 1) / 255)
    x = (torch.stack(batch) - torch.tensor(STATS[0]).view(1, 3, 1, 1)) / torch.tensor(STATS[1]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    # one batch or two: the same numbers
    np.testing.assert_allclose(predictor.predict_files(images, batch_size=64), probs, atol=1e-5)


def test_predict_files_empty(predictor):
    assert predictor.predict_files([]).shape == (0, len(CLASSES))


def test_batch_single_and_memory_format_agree(exported, predictor, images):
    one_by_one = np.concatenate([predictor.predict_files([p]) for p in images])
    np.testing.assert_allclose(predictor.predict_files(images), one_by_one, atol=1e-5)
    plain = Predictor(exported[2], channels_last=False)
    np.testing.assert_allclose(plain.predict_files(images), one_by_one, atol=1e-5)


def test_top_k(predictor):
    probs = np.array([0.2, 0.5, 0.3], dtype=np.float32)
    assert predictor.top_k(probs, 2) == [("grizzly", 0.5), ("teddy", pytest.approx(0.3))]
    assert [label for label, _ in predictor.top_k(probs, 10)] == ["grizzly", "teddy", "black"]


def test_threads_setting(exported):
    try:
        Predictor(exported[2], threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_exif_orientation_is_applied(predictor):
    rng = np.random.default_rng(1)
    upright = Image.fromarray(rng.integers(0, 256, (48, 24, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "PNG", exif=exif)
    decoded = predictor.decode(buf.getvalue())
    assert torch.equal(decoded, predictor.preprocess(upright))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels: a decompression bomb's calling card."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + png_chunk(b"IEND", b""))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decode_names_what_is_wrong(predictor, images):
    good = images[0].read_bytes()
    assert predictor.decode(good).shape == (3, 32, 32)
    cases = {"empty": b"", "not_image": b"<html><body>hi</body></html>", "corrupt": good[:len(good) // 2],
             "bomb": png_declaring(100_000, 100_000)}
    for kind, data in cases.items():
        with pytest.raises(BadImage) as info:
            predictor.decode(data)
        assert info.value.kind == kind, (kind, str(info.value))
    with pytest.raises(BadImage, match="decompression bomb"):  # over the limit, under Pillow's error level
        predictor.decode(png_declaring(10_000, 9_000))


@pytest.fixture(scope="module")
def learner_and_images(tmp_path_factory):
    """An untrained fastai learner on a few generated images (odd sizes, modes and formats)."""
    root = tmp_path_factory.mktemp("fastai")
    rng = np.random.default_rng(2)
    specs = [((40, 30), "RGB", "png"), ((23, 61), "RGB", "jpg"), ((50, 17), "L", "png"),
             ((64, 48), "RGBA", "png"), ((33, 33), "P", "png"), ((90, 20), "RGB", "jpg")]
    rows = []
    for i, (size, mode, ext) in enumerate(specs):
        channels = 3 if mode in ("RGB", "RGBA") else 1
        array = rng.integers(0, 256, (size[1], size[0], channels + (mode == "RGBA")), dtype=np.uint8)
        image = Image.fromarray(array.squeeze(), "RGBA" if mode == "RGBA" else None if channels == 3 else "L")
        (image.convert("P") if mode == "P" else image).save(root / f"{i}.{ext}")
        rows.append({"path": f"{i}.{ext}", "label": CLASSES[i % 3], "split": "train" if i < 3 else "valid"})
    p = project_params("train", img_size=40, batch_size=2, device="cpu", mixed_precision=False, augment=False)
    dls = dataloaders(pd.DataFrame(rows), p, root=root)
    learn = build_learner(dls, p, root / "work")
    with torch.no_grad():  # sharper than an untrained head, so 1e-4 is a real test
        learn.model[-1][-1].weight.mul_(20)
    save_model(learn.model, list(dls.vocab), p, NORMALIZE, root / "model")
    return learn, [root / r["path"] for r in rows], root / "model"


def test_probabilities_match_fastai_learn_predict(learner_and_images):
    learn, paths, model_dir = learner_and_images
    predictor = Predictor(model_dir)
    assert predictor.classes == list(learn.dls.vocab)
    ours = predictor.predict_files(paths)
    with learn.no_bar():
        theirs = np.stack([learn.predict(p)[2].numpy() for p in paths])
    assert theirs.max(axis=1).min() > 0.4  # not near-uniform
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_learner_from_folder_predicts_and_interprets_without_pickle(learner_and_images, monkeypatch):
    from fastai.interpret import ClassificationInterpretation

    from bearid.notebook import learner_from_folder

    _, paths, model_dir = learner_and_images
    root = model_dir.parent

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading an exported model")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    learn = learner_from_folder(model_dir, root=root)
    monkeypatch.undo()

    assert list(learn.dls.vocab) == CLASSES
    with learn.no_bar():
        theirs = np.stack([learn.predict(p)[2].numpy() for p in paths])
    np.testing.assert_allclose(theirs, Predictor(model_dir).predict_files(paths), atol=1e-4)

    df = pd.DataFrame({"path": [p.name for p in paths], "label": [CLASSES[i % 3] for i in range(len(paths))]})
    interp = ClassificationInterpretation.from_learner(learn, dl=learn.dls.test_dl(df, with_labels=True))
    matrix = interp.confusion_matrix()
    assert matrix.shape == (3, 3) and matrix.sum() == len(paths)
    assert matrix.sum(axis=1).tolist() == [sum(CLASSES[i % 3] == c for i in range(len(paths))) for c in CLASSES]


def test_a_pretrained_timm_export_predicts_as_fastai_does(learner_and_images, tmp_path):
    """efficientnet_lite0 with the packaged weights: exported, rebuilt by name, normalised to [-1, 1]."""
    from bearid.learner import normalization
    from bearid.notebook import learner_from_folder

    _, paths, model_dir = learner_and_images
    root = model_dir.parent
    p = project_params("train", arch="efficientnet_lite0", pretrained=True, img_size=40, batch_size=2,
                       device="cpu", mixed_precision=False)
    rows = [{"path": path.name, "label": CLASSES[i % 3], "split": "train" if i < 3 else "valid"}
            for i, path in enumerate(paths)]
    learn = build_learner(dataloaders(pd.DataFrame(rows), p, root=root), p, tmp_path)
    meta = save_model(learn.model, CLASSES, p, normalization(p.arch), tmp_path / "model")
    assert meta["arch"] == "efficientnet_lite0" and meta["mean"] == meta["std"] == [0.5] * 3
    with learn.no_bar():
        theirs = np.stack([learn.predict(path)[2].numpy() for path in paths])
    np.testing.assert_allclose(Predictor(tmp_path / "model").predict_files(paths), theirs, atol=1e-4)
    again = learner_from_folder(tmp_path / "model", root=root)
    with again.no_bar():
        np.testing.assert_allclose(np.stack([again.predict(path)[2].numpy() for path in paths]), theirs, atol=1e-4)
