"""Data sources on files the tests write (CIFAR-10 binary, CSV, image folders), preprocessing
fitted on train only, augmentation, and the fast vs streaming loaders."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch

from trainlab.data import AUGMENTS, SOURCES, StreamingLoader, TensorLoader, build_augment, build_data
from trainlab.data.augment import Augment
from trainlab.data.cifar import RECORD
from trainlab.errors import DataError, RecipeError
from trainlab.recipe import load_recipe


def data(recipe_data: dict, seed: int = 0):
    r = load_recipe({"seed": seed, "data": recipe_data})
    return build_data(r.data, r.seed)


# --- CIFAR-10, official binary layout ---------------------------------------------------------
def cifar_batch(n: int, seed: int) -> bytes:
    g = np.random.default_rng(seed)
    rec = np.zeros((n, RECORD), dtype=np.uint8)
    rec[:, 0] = np.arange(n) % 10
    rec[:, 1:] = g.integers(0, 256, (n, RECORD - 1))
    return rec.tobytes()


def write_cifar(folder, n=20):
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"data_batch_{i}.bin": cifar_batch(n, i) for i in range(1, 6)}
    files["test_batch.bin"] = cifar_batch(n, 9)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return files


def test_cifar10_reads_loose_binary_batches(tmp_path):
    files = write_cifar(tmp_path / "cifar-10-batches-bin")
    b = data({"source": "cifar10", "root": str(tmp_path), "val_fraction": 0.1})
    assert b.info.input_shape == (3, 32, 32) and b.info.num_classes == 10 and b.info.kind == "image"
    assert b.info.sizes == {"train": 90, "val": 10, "test": 20}
    # pixel bytes 1..3072 of a record are the R, G, B planes of one 32×32 image, scaled to [0, 1]
    rec = np.frombuffer(files["test_batch.bin"], dtype=np.uint8).reshape(-1, RECORD)
    assert torch.equal(b.test.x[3], torch.from_numpy(rec[3, 1:].reshape(3, 32, 32).astype(np.float32)) / 255)
    assert b.test.y.tolist() == (np.arange(20) % 10).tolist()


def test_cifar10_reads_the_tar_gz_without_extracting(tmp_path):
    files = write_cifar(tmp_path / "loose")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "cifar-10-binary.tar.gz").write_bytes(buf.getvalue())
    b = data({"source": "cifar10", "root": str(tmp_path / "archive"), "val_fraction": 0.0})
    assert b.info.sizes == {"train": 100, "test": 20}
    assert not any((tmp_path / "archive").glob("*.bin"))


def test_cifar10_truncated_batch_names_the_file(tmp_path):
    write_cifar(tmp_path)
    p = tmp_path / "data_batch_3.bin"
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"data_batch_3\.bin: truncated CIFAR-10 batch"):
        data({"source": "cifar10", "root": str(tmp_path)})


# --- scikit-learn and synthetic sources (generated from the registry) ------------------------
@pytest.mark.parametrize("name", [n for n in SOURCES.names() if n.startswith(("sklearn:", "synthetic:"))])
def test_builtin_sources_build(name):
    b = data({"source": name})
    assert len(b.train) > 0 and len(b.test) > 0
    assert b.info.task in ("classification", "regression", "multilabel")
    if b.info.task == "classification":
        assert b.info.num_classes == len(b.info.class_names) >= 2


def test_sklearn_digits_are_images_and_blobs_are_separable():
    b = data({"source": "sklearn:digits"})
    assert b.info.input_shape == (1, 8, 8) and float(b.train.x.max()) <= 1.0
    blobs = data({"source": "synthetic:classification", "classes": 4, "features": 3, "n": 400})
    assert blobs.info.input_shape == (3,) and blobs.info.num_classes == 4


# --- preprocessing is fitted on the training split only ---------------------------------------
def test_normalization_statistics_come_from_the_training_split_only():
    b = data({"source": "synthetic:linear", "n": 1000, "test_fraction": 0.2, "val_fraction": 0.0,
              "preprocess": [{"normalize": "standard"}]})
    st = b.info.stats["normalize"]
    raw = data({"source": "synthetic:linear", "n": 1000, "test_fraction": 0.2, "val_fraction": 0.0})
    assert st["shift"][0] == pytest.approx(float(raw.train.x.mean()), abs=1e-6)
    assert st["scale"][0] == pytest.approx(float(raw.train.x.std()), abs=1e-6)


def test_split_indices_point_into_the_source_and_partition_it():
    from trainlab.data import SOURCES

    r = load_recipe({"seed": 3, "data": {"source": "sklearn:wine", "subset": 0.5}})
    b = build_data(r.data, r.seed)
    src = SOURCES.build("sklearn:wine", {}, "data")
    idx = b.split_indices
    assert sorted(idx) == ["test", "train", "val"]
    for k in idx:
        assert torch.equal(src.train.y[idx[k]], b.split(k).y)
    everything = torch.cat(list(idx.values()))
    assert len(everything.unique()) == len(everything)  # disjoint


def test_saved_preprocessing_is_applied_instead_of_refitted():
    r = load_recipe({"data": {"source": "synthetic:linear", "preprocess": [{"normalize": "standard"}]}})
    saved = {"0.shift": torch.tensor([[10.0]]), "0.scale": torch.tensor([[2.0]])}
    b = build_data(r.data, 0, saved)
    raw = data({"source": "synthetic:linear"})
    assert torch.allclose(b.train.x, (raw.train.x - 10) / 2) and torch.allclose(b.test.x, (raw.test.x - 10) / 2)
    assert b.info.stats["normalize"]["shift"] == [10.0]


def test_normalization_ignores_the_test_file(tmp_path):
    # train rows ~ 0..1, test rows ~ 100..101: the fitted shift must be the training mean (≈0.5),
    # not the mean of all rows (≈ 33)
    rng = np.random.default_rng(0)
    tr = tmp_path / "train.csv"
    te = tmp_path / "test.csv"
    import pandas as pd

    pd.DataFrame({"a": rng.random(200), "y": np.arange(200) % 2}).to_csv(tr, index=False)
    pd.DataFrame({"a": 100 + rng.random(100), "y": np.arange(100) % 2}).to_csv(te, index=False)
    b = data({"source": "csv", "path": str(tr), "test_path": str(te), "target": "y", "val_fraction": 0.0,
              "preprocess": [{"normalize": "standard"}]})
    shift = b.info.stats["normalize"]["shift"][0]
    full = float(np.concatenate([pd.read_csv(tr)["a"], pd.read_csv(te)["a"]]).mean())
    assert shift == pytest.approx(float(pd.read_csv(tr)["a"].mean()), abs=1e-5)
    assert abs(shift - full) > 30
    assert float(b.test.x.mean()) > 100  # the test split is scaled with the training statistics


# --- CSV: task inference, one-hot, imputation and dropping, reported -------------------------
def write_table(tmp_path, blank: float = 0.0):
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"num": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue"], n),
                       "y": rng.integers(0, 3, n)})
    if blank:
        df.loc[rng.random(n) < blank, "num"] = np.nan
        df.loc[rng.random(n) < blank, "colour"] = np.nan
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    return p, df


def test_csv_one_hot_and_task_inference(tmp_path):
    p, _ = write_table(tmp_path)
    b = data({"source": "csv", "path": str(p), "target": "y"})
    assert b.info.task == "classification" and b.info.num_classes == 3
    assert b.info.input_shape == (4,)  # num + three colours
    assert b.info.extra["encoded_features"] == ["num__num", "cat__colour_blue", "cat__colour_green",
                                                "cat__colour_red"]
    assert torch.equal(b.train.x[:, 1:].sum(1), torch.ones(len(b.train)))
    reg = data({"source": "csv", "path": str(p), "target": "num"})
    assert reg.info.task == "regression"
    forced = data({"source": "csv", "path": str(p), "target": "y", "task": "regression"})
    assert forced.info.task == "regression"


def test_csv_imputes_or_drops_and_says_how_many(tmp_path):
    p, df = write_table(tmp_path, blank=0.1)
    blanks = int(df[["num", "colour"]].isna().sum().sum())
    b = data({"source": "csv", "path": str(p), "target": "y", "missing": "median"})
    assert b.info.notes == [(f"imputed {blanks} missing cells with the median of the training split "
                             "(categorical columns: its most frequent value; data.missing: median)")]
    assert not torch.isnan(b.train.x).any() and sum(b.info.sizes.values()) == len(df)
    d = data({"source": "csv", "path": str(p), "target": "y", "missing": "drop"})
    rows = int(df[["num", "colour"]].isna().any(axis=1).sum())
    assert sum(d.info.sizes.values()) == len(df) - rows
    assert d.info.notes[0].startswith(f"dropped {rows} rows with missing feature values ({blanks} empty cells")


def test_csv_missing_column_names_it(tmp_path):
    p, _ = write_table(tmp_path)
    with pytest.raises(DataError, match=r"t\.csv: no target column 'label' \(data\.target\)"):
        data({"source": "csv", "path": str(p), "target": "label"})
    with pytest.raises(DataError, match=r"no feature column 'size'"):
        data({"source": "csv", "path": str(p), "target": "y", "features": ["num", "size"]})


def test_parquet_reads_like_csv(tmp_path):
    p, df = write_table(tmp_path)
    df.to_parquet(tmp_path / "t.parquet")
    a = data({"source": "csv", "path": str(p), "target": "y"})
    b = data({"source": "parquet", "path": str(tmp_path / "t.parquet"), "target": "y"})
    assert torch.allclose(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)


# --- image folders ------------------------------------------------------------------------------
def write_pngs(root, per_class=6, size=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["circle", "square"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = (rng.random((size, size, 3)) * 60 + c * 180).astype(np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def test_image_folder_resizes_and_labels_by_subfolder(tmp_path):
    write_pngs(tmp_path / "imgs")
    b = data({"source": "image_folder", "path": str(tmp_path / "imgs"), "size": [8, 10], "mode": "grayscale",
              "val_fraction": 0.0, "test_fraction": 0.25})
    assert b.info.input_shape == (1, 8, 10) and b.info.class_names == ["circle", "square"]
    assert b.info.sizes == {"train": 8, "test": 4}
    assert float(b.train.x[b.train.y == 1].mean()) > float(b.train.x[b.train.y == 0].mean()) + 0.5


def test_image_folder_non_image_file_names_it(tmp_path):
    write_pngs(tmp_path / "imgs")
    (tmp_path / "imgs" / "square" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"square/notes\.txt: not a PNG or JPEG image"):
        data({"source": "image_folder", "path": str(tmp_path / "imgs")})
    (tmp_path / "imgs" / "square" / "notes.txt").unlink()
    (tmp_path / "imgs" / "square" / "broken.png").write_bytes(b"not really a png")
    with pytest.raises(DataError, match=r"square/broken\.png: cannot read as an image"):
        data({"source": "image_folder", "path": str(tmp_path / "imgs")})


# --- augmentation -------------------------------------------------------------------------------
def digits():
    return data({"source": "sklearn:digits", "preprocess": [{"normalize": "standard"}]})


@pytest.mark.parametrize("name", AUGMENTS.names())
def test_every_augmentation_keeps_shapes_and_is_seeded(name):
    b = digits()
    x, y = b.train.x[:32], b.train.y[:32]
    out = [build_augment([name], b.info, "cpu", seed)(x.clone(), y) for seed in (0, 0, 1)]
    assert out[0][0].shape == x.shape and torch.isfinite(out[0][0]).all()
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    assert not torch.equal(out[0][0], out[2][0])
    if AUGMENTS.get(name).factory().soft:
        assert out[0][1].shape == (32, 10) and torch.allclose(out[0][1].sum(1), torch.ones(32))
    else:
        assert torch.equal(out[0][1], y)


def test_hflip_and_crop_do_what_they_say():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    y = torch.zeros(64, dtype=torch.long)
    flipped, _ = Augment([AUGMENTS.build("hflip", {"p": 1.0}, "a")])(x, y)
    assert torch.equal(flipped, x.flip(-1))
    crops, _ = Augment([AUGMENTS.build("random_crop", {"padding": 1}, "a")])(x, y)
    # each crop is the image shifted by at most one pixel, zeros coming in at the border
    for c in crops:
        nz = c[c != 0]
        assert set(nz.tolist()) <= set(range(16)) and len(nz) >= 8


def test_augment_state_restores_the_same_draws():
    b = digits()
    a = build_augment([{"affine": {"degrees": 10}}, {"mixup": 0.4}], b.info, "cpu", 3)
    x, y = b.train.x[:16], b.train.y[:16]
    a(x, y)
    state = a.state_dict()
    want = a(x, y)
    a2 = build_augment([{"affine": {"degrees": 10}}, {"mixup": 0.4}], b.info, "cpu", 99)
    a2.load_state_dict(state)
    got = a2(x, y)
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def test_augment_errors_name_the_entry():
    with pytest.raises(RecipeError, match=r"data\.augment\.1: unknown augmentation 'hflp'; did you mean 'hflip'"):
        load_recipe({"data": {"source": "sklearn:digits", "augment": ["noise", "hflp"]}})
    with pytest.raises(RecipeError, match=r"data\.augment\.0\.p: input should be less than or equal to 1"):
        load_recipe({"data": {"source": "sklearn:digits", "augment": [{"hflip": 2}]}})
    b = data({"source": "sklearn:iris"})
    with pytest.raises(RecipeError, match=r"data\.augment\.0: hflip works on images"):
        build_augment(["hflip"], b.info)
    reg = data({"source": "synthetic:linear"})
    with pytest.raises(RecipeError, match=r"data\.augment\.0: mixup mixes class targets"):
        build_augment(["mixup"], reg.info)


# --- loaders: fast path and streaming give the same batches -------------------------------------
def test_fast_and_streaming_loaders_give_identical_batches_and_resume():
    b = digits()
    fast = TensorLoader(b.train, 100, seed=5)
    stream = StreamingLoader(b.train, 100, seed=5, workers=2)
    for _ in range(2):  # two epochs: two different permutations
        pairs = list(zip(fast, stream, strict=True))
        assert len(pairs) == len(fast) == 13
        for (fx, fy), (sx, sy) in pairs:
            assert torch.equal(fx, sx) and torch.equal(fy, sy)
    # stop mid-epoch, restore into a fresh streaming loader: the rest of the epoch is the same
    it = iter(stream)
    [next(it) for _ in range(4)]
    state = stream.state_dict()
    assert state == {"epoch": 2, "position": 4, "seed": 5}
    resumed = StreamingLoader(b.train, 100, seed=0, workers=0)
    resumed.load_state_dict(state)
    rest = list(resumed)
    ref = TensorLoader(b.train, 100, seed=5)
    ref.load_state_dict(state)
    for (rx, ry), (qx, qy) in zip(rest, ref, strict=True):
        assert torch.equal(rx, qx) and torch.equal(ry, qy)


def test_loader_choice_follows_the_memory_budget():
    from trainlab.data import build_loader

    r = load_recipe({"data": {"source": "sklearn:digits", "memory_budget_mb": 0.01}})
    b = build_data(r.data, 0)
    assert type(build_loader(b.train, r.data, 0)) is StreamingLoader
    r2 = load_recipe({"data": {"source": "sklearn:digits"}})
    assert type(build_loader(b.train, r2.data, 0)) is TensorLoader


def test_resume_with_augmentation_is_exact():
    # two epochs straight, against one epoch + state_dict/load_state_dict + one more: same weights,
    # because the augmentation generator's state travels with the trainer's
    from trainlab.train import Trainer

    def recipe(epochs):
        return load_recipe({"seed": 4, "data": {"source": "sklearn:digits", "batch_size": 64,
                                                "augment": [{"random_crop": {"padding": 1}}, "hflip", {"mixup": 0.4}]},
                            "model": {"name": "mlp", "widths": [16]}, "train": {"epochs": epochs, "threads": 1},
                            "output": {"tensorboard": False}})

    straight = Trainer(recipe(2), progress=False)
    straight.fit()
    first = Trainer(recipe(2), progress=False)
    first.epochs = 1
    first.fit()
    state, weights = first.state_dict(), {k: v.clone() for k, v in first.model.state_dict().items()}
    assert "generator" in state["augment"]
    resumed = Trainer(recipe(2), progress=False)
    resumed.model.load_state_dict(weights)
    resumed.load_state_dict(state)
    resumed.fit()
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_borders_and_erased_boxes_are_black_after_normalization():
    b = digits()
    st = b.info.stats["normalize"]
    black = -st["shift"][0] / st["scale"][0]
    x = torch.full((64, 1, 8, 8), 5.0)  # bright everywhere: any other value came from the fill
    for aug in (["random_crop"], [{"erase": 1.0}], [{"affine": {"translate": 0.3}}]):
        out, _ = build_augment(aug, b.info, "cpu", 0)(x, torch.zeros(64, dtype=torch.long))
        other = out[(out - 5.0).abs() > 1e-4]
        assert len(other) > 0
        if aug != [{"affine": {"translate": 0.3}}]:  # a warp blends the border bilinearly
            assert torch.allclose(other, torch.tensor(black))
        assert float(other.min()) >= black - 1e-4


def test_cifar10_is_downloaded_once_into_the_cache_when_absent(tmp_path, monkeypatch):
    from trainlab.data import cifar

    files = write_cifar(tmp_path / "made", n=10)
    calls = []

    def fake_download(url, dest, md5, timeout=20.0):  # stands in for the network: writes the archive
        calls.append((url, md5))
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(dest, "w:gz") as tar:
            for name in files:
                tar.add(tmp_path / "made" / name, arcname=f"cifar-10-batches-bin/{name}")

    monkeypatch.setattr(cifar, "download", fake_download)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAINLAB_DATA", raising=False)
    monkeypatch.delenv("TRAINLAB_OFFLINE", raising=False)
    monkeypatch.setattr(cifar, "SYSTEM_DIRS", [])
    b = data({"source": "cifar10", "val_fraction": 0.0})
    assert b.info.sizes == {"train": 50, "test": 10}
    assert calls == [(cifar.URL, cifar.MD5)]
    data({"source": "cifar10"})  # found in the cache now: no second download
    assert len(calls) == 1
    monkeypatch.setenv("TRAINLAB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="cifar10 not found"):
        data({"source": "cifar10"})
