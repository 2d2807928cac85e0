"""Data loading, binding to model inputs, splits and streaming."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from liteparity.data.binding import bind, split
from liteparity.data.datasets import NpyColumn, load
from liteparity.errors import DataError


def test_npz_with_x_and_y(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((5, 2, 2, 1), np.float32), y=np.arange(5))
    ds = load(path)
    assert len(ds) == 5 and ds.labels.tolist() == [0, 1, 2, 3, 4]


def test_one_hot_labels_become_class_ids() -> None:
    ds = load((np.zeros((3, 4), np.float32), np.eye(3)[[2, 0, 1]]))
    assert ds.labels.tolist() == [2, 0, 1]


def test_npy_is_read_lazily_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "d.npy"
    full = np.arange(48, dtype=np.float32).reshape(6, 4, 2)
    np.save(path, full)
    ds = load(path)
    assert isinstance(ds.columns["x"], NpyColumn) and len(ds) == 6
    binding = bind(ds, ["in"], [(4, 2)], ["float32"])
    rows = np.array([0, 1, 2, 4])  # a run of three and a single row
    (x,), labels = binding.take(rows)
    assert labels is None and np.array_equal(x, full[rows])


def test_truncated_npy_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.npy"
    np.save(path, np.zeros((100, 8), np.float32))
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(DataError, match="shorter than its header"):
        load(path).columns["x"][np.arange(100)]


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickle"):
        load(path)


def test_csv_with_label_column_is_reshaped_to_the_model(tmp_path: Path) -> None:
    path = tmp_path / "d.csv.gz"
    rows = np.hstack([np.arange(8).reshape(2, 4), [[3], [7]]])
    with gzip.open(path, "wt") as fh:
        for row in rows:
            fh.write(",".join(str(v) for v in row) + "\n")
    ds = load(path, label_column=-1)
    assert ds.labels.tolist() == [3, 7]
    (x,), _ = bind(ds, ["img"], [(2, 2, 1)], ["float32"]).take(np.array([1]))
    assert x.shape == (1, 2, 2, 1) and x.ravel().tolist() == [4, 5, 6, 7]


def test_csv_header_names_the_label(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    ds = load(path)
    assert ds.labels.tolist() == [0, 1] and ds.columns["x"].shape == (2, 2)


def test_csv_regression_targets_stay_float(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,target\n1,2,0.25\n3,4,-1.5\n")
    ds = load(path, label_column=-1)
    assert ds.labels.dtype.kind == "f" and ds.labels.tolist() == [0.25, -1.5]
    assert load(tmp_path / "d.csv", label_column=0).labels.dtype.kind == "i"  # 1, 3: classes


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    from PIL import Image

    for label, value in (("cat", 10), ("dog", 200)):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 5), value, np.uint8)).save(tmp_path / label / f"{i}.png")
    ds = load(tmp_path, image_size=(4, 4), scale=1 / 255)
    assert ds.labels.tolist() == [0, 0, 1, 1]
    (x,), _y = bind(ds, ["img"], [(4, 4, 1)], ["float32"]).take(np.array([0, 3]))
    assert x.shape == (2, 4, 4, 1)
    assert x[0].max() == pytest.approx(10 / 255) and x[1].min() == pytest.approx(200 / 255)


def test_shape_mismatch_says_how_to_reshape() -> None:
    ds = load(np.zeros((4, 784), np.float32))
    with pytest.raises(DataError, match=r"reshape the data to \(N, 28, 28, 1\)"):
        bind(ds, ["image"], [(28, 28, 1)], ["float32"])


def test_nan_rows_are_named() -> None:
    x = np.zeros((5, 3), np.float32)
    x[3, 1] = np.nan
    binding = bind(load(x), ["in"], [(3,)], ["float32"])
    with pytest.raises(DataError, match=r"sample\(s\) 3"):
        binding.take(np.arange(5))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ((np.zeros((3, 2)), np.arange(4)), "4 labels for 3 samples"),
        (np.zeros((0, 2)), "empty"),
        ("/nonexistent/file.npz", "not found"),
        ("data.parquet", "unknown data format"),
    ],
)
def test_bad_data_is_a_clear_error(tmp_path: Path, spec, match: str) -> None:
    if isinstance(spec, str) and spec == "data.parquet":
        spec = tmp_path / spec
        spec.write_text("x")
    with pytest.raises(DataError, match=match):
        load(spec)


def test_split_is_disjoint_seeded_and_complete() -> None:
    cal, ev = split(1000, 200, seed=7)
    assert len(cal) == 200 and len(ev) == 800
    assert not set(cal) & set(ev) and set(cal) | set(ev) == set(range(1000))
    again, _ = split(1000, 200, seed=7)
    assert cal.tolist() == again.tolist()
    other, _ = split(1000, 200, seed=8)
    assert cal.tolist() != other.tolist()


def test_batches_cover_every_row_once() -> None:
    x = np.arange(10, dtype=np.float32)[:, None]
    binding = bind(load((x, np.arange(10))), ["in"], [(1,)], ["float32"])
    seen = [y for _, y in binding.batches(np.arange(10), 4)]
    assert [len(b) for b in seen] == [4, 4, 2]
    assert np.concatenate(seen).tolist() == list(range(10))


def test_two_dimensional_float_labels_stay_regression_targets() -> None:
    targets = np.array([[0.5, 1.5, -2.0], [1.0, 0.0, 0.0]], np.float32)
    ds = load((np.zeros((2, 4), np.float32), targets))
    assert ds.labels.dtype == np.float32 and ds.labels.shape == (2, 3)


def test_label_column_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match="--label-column 5 but the CSV has 3 columns"):
        load(path, label_column=5)


def test_a_portable_binding_reads_the_same_rows_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Ray actor reads with (``Binding.portable``, pickled): from another working
    directory, files named by relative paths give the arrays they give here (cast to the
    model's float32), without labels; arrays and CSV tables, held in memory, are not
    portable."""
    import pickle

    from PIL import Image

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    x = np.random.default_rng(0).random((7, 4, 4, 1))  # float64: take casts it
    np.save(data / "x.npy", x)
    np.savez(data / "stored.npz", x=x, y=np.arange(7))
    np.savez_compressed(data / "deflated.npz", x=x)
    for i in range(7):
        Image.fromarray(np.full((6, 5), 30 * i, np.uint8)).save(data / "images" / f"{i}.png")
    np.savetxt(data / "t.csv", x.reshape(7, -1), delimiter=",")
    rows = np.array([1, 2, 3, 6])
    monkeypatch.chdir(data)
    for name in ("x.npy", "stored.npz", "deflated.npz", "images"):
        binding = bind(load(name, image_size=(4, 4)), ["in"], [(4, 4, 1)], ["float32"])
        (here,), _ = binding.take(rows)
        portable = pickle.loads(pickle.dumps(binding.portable()))
        monkeypatch.chdir(tmp_path)  # where the relative paths name nothing
        (there,), labels = portable.take(rows)
        monkeypatch.chdir(data)
        assert labels is None and there.dtype == np.float32
        assert np.array_equal(there, here), name
    for spec in (x, "t.csv"):
        assert bind(load(spec), ["in"], [(4, 4, 1)], ["float32"]).portable() is None
