"""Hostile data and model files through the library: declared sizes checked before reading,
``.npz`` streamed, nothing unpickled, no Lambda run, results written atomically, strict JSON;
and a bounded fuzz of mutated files that must end in a ``LiteparityError`` or a result."""

from __future__ import annotations

import json
import math
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from liteparity.data.datasets import load
from liteparity.data.npfiles import NpzColumn
from liteparity.errors import DataError, LiteparityError, ModelError, OutputError
from liteparity.files import write_atomic
from liteparity.measure import resume
from liteparity.reference.guard import check_h5, check_keras_archive
from liteparity.reference.loader import load as load_model
from liteparity.results.check import CandidateResult, CheckResult, Metric, non_finite_finding
from tests import hostile_files as hf


def test_npy_header_claiming_1e11_rows_is_refused_before_reading(tmp_path: Path) -> None:
    path = hf.lying_npy(tmp_path / "liar.npy", 10**11)
    with pytest.raises(DataError, match="shorter than its header says"):
        load(path)


def test_npz_member_that_claims_to_inflate_beyond_deflate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "liar.npz"
    np.savez_compressed(path, x=np.zeros((10, 8, 8, 1), np.float32), y=np.zeros(10, np.int64))
    hf.lie_about_size(path, "x.npy", (4 << 30) - 1)
    with pytest.raises(DataError, match="more than compression can"):
        load(path)


def test_pickled_npz_is_one_clear_error_and_never_unpickled(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="pickle: refused"):
        load(hf.pickled_npz(tmp_path / "evil.npz"))


@pytest.mark.parametrize("compress", [np.savez, np.savez_compressed])
def test_npz_rows_read_in_any_order_equal_the_array(tmp_path: Path, compress) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4, 3)).astype(np.float32)
    compress(tmp_path / "d.npz", x=x, y=np.arange(300))
    ds = load(tmp_path / "d.npz")
    assert isinstance(ds.columns["x"], NpzColumn) and ds.labels.tolist() == list(range(300))
    for rows in (rng.permutation(300)[:77], np.arange(250, 300), np.array([5, 5, 4, 299, 0])):
        assert np.array_equal(ds.columns["x"][rows], x[rows])


def test_a_bomb_member_is_streamed_a_few_rows_at_a_time(tmp_path: Path) -> None:
    """200k rows inflate to 51 MB; taking 1000 of them keeps a few MB, not the member."""
    ds = load(hf.npz_bomb(tmp_path / "bomb.npz", 200_000))
    column = ds.columns["x"]
    tracemalloc.start()
    try:
        rows = column[np.arange(199_000, 200_000)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows.shape == (1000, 8, 8, 1) and not rows.any()
    assert peak < 8 << 20, peak  # 1000 rows are 256 kB; the member is 51 MB


def test_hidden_entries_of_an_image_folder_are_not_classes_or_images(tmp_path: Path) -> None:
    ds = load(hf.image_folder(tmp_path / "imgs", hidden=True))
    assert len(ds) == 6 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_a_text_file_named_png_is_one_clear_error(tmp_path: Path) -> None:
    ds = load(hf.image_folder(tmp_path / "imgs", bad="3.png"))
    with pytest.raises(DataError, match=r"3\.png: not a readable image"):
        ds.columns["x"][np.arange(len(ds))]


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("evil")
    return hf.evil_h5(d / "evil.h5", d / "MARKER"), d / "MARKER"


def test_h5_lambda_is_refused_before_tf_keras_sees_it(evil: tuple[Path, Path]) -> None:
    path, marker = evil
    with pytest.raises(ModelError, match="Lambda layer, whose code would run on load"):
        load_model(path)
    assert not marker.exists()
    check_h5(path, unsafe=True)  # the user's explicit trust lets it through the guard


def test_h5_unknown_layer_class_is_refused(evil: tuple[Path, Path], tmp_path: Path) -> None:
    path = hf.relabel_layer(evil[0], tmp_path / "custom.h5", "Lambda", "MyLayer")
    with pytest.raises(ModelError, match="custom layer 'MyLayer'"):
        check_h5(path, unsafe=False)


def test_h5_without_a_model_config_is_refused(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "weights.h5", "w") as f:
        f["w"] = np.zeros(3)
    with pytest.raises(ModelError, match="no model config"):
        check_h5(tmp_path / "weights.h5", unsafe=False)


def test_keras_config_bomb_is_refused_before_keras_reads_it(tmp_path: Path) -> None:
    path = hf.config_bomb(tmp_path / "bomb.keras", 80 << 20)
    with pytest.raises(ModelError, match=r"config\.json is 83886080 bytes"):
        check_keras_archive(path)
    liar = hf.lie_about_size(
        hf.config_bomb(tmp_path / "liar.keras", 1 << 20), "config.json", 2 << 30
    )
    with pytest.raises(ModelError, match="more than compression can"):
        load_model(liar)


def test_failed_writes_name_the_file_and_leave_nothing(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match=r"cannot write .*taken: is a directory"):
        write_atomic(tmp_path / "taken", b"x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/out\.json"):
        write_atomic(tmp_path / "file" / "out.json", b"x")

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match=r"out\.json: No space left on device"):
        write_atomic(tmp_path / "out.json", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken"]


def test_resume_key_streams_and_does_not_depend_on_the_block(monkeypatch) -> None:
    x = np.random.default_rng(2).normal(size=(500, 6)).astype(np.float32)
    rows, labels = np.arange(3, 480), np.arange(500)
    whole = resume.rows_fingerprint([x], rows, labels)
    monkeypatch.setattr(resume, "HASH_BLOCK_BYTES", 7 * 48)  # 7 rows a block
    assert resume.rows_fingerprint([x], rows, labels) == whole
    changed = x.copy()
    changed[479, 5] += 1
    assert resume.rows_fingerprint([changed], rows, labels) != whole
    assert resume.rows_fingerprint([changed], rows[:-1], labels) == resume.rows_fingerprint(
        [x], rows[:-1], labels
    )


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"non-strict JSON literal {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_and_one_type_per_field() -> None:
    same = CandidateResult("float32", "float32", metric=Metric("accuracy", 0.9), sqnr_db=math.inf)
    nan = CandidateResult(
        "float16",
        "float16",
        metric=Metric("mse", math.nan),
        rmse=math.nan,
        non_finite_share=1.0,
        findings=(non_finite_finding(1.0),),
    )
    doc = _strict(CheckResult(None, {"extra": math.nan}, (same, nan)).to_json())
    rows = doc["candidates"]
    assert rows[0]["sqnr_db"] is None and rows[0]["special"] == {"sqnr_db": "inf"}
    assert rows[1]["rmse"] is None and rows[1]["special"]["rmse"] == "nan"
    assert rows[1]["metric"] == {"name": "mse", "value": None, "special": "nan"}
    assert doc["data"]["extra"] is None
    back = CandidateResult.from_dict(rows[1])
    assert math.isnan(back.rmse) and [f.id for f in back.findings] == ["non-finite"]


def test_non_finite_outputs_break_any_budget() -> None:
    row = CandidateResult("x", "x", drop=0.0, agreement=1.0, non_finite_share=0.25)
    result = CheckResult(None, {}, (row,))
    assert result.violations() == []
    assert result.violations(max_drop=5.0) == ["x: 25.00% of its outputs are NaN or Inf"]


# -- the fuzz ----------------------------------------------------------------------------------
MUTANTS_PER_KIND = 40


def _mutate(content: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(content)
    kind = rng.integers(3)
    if kind == 0:
        for pos in rng.integers(0, len(data), size=rng.integers(1, 8)):
            data[pos] = int(rng.integers(256))
    elif kind == 1:
        data = data[: int(rng.integers(1, len(data)))]
    else:  # the headers: npy magic and dict, zip local header, HDF5 superblock
        for pos in rng.integers(0, min(128, len(data)), size=rng.integers(1, 6)):
            data[pos] = int(rng.integers(256))
    return bytes(data)


def _read_everything(path: Path) -> None:
    ds = load(path)
    for column in ds.columns.values():
        column[np.arange(len(ds))]


@pytest.mark.parametrize("kind", ["npy", "npz", "npz_compressed", "png"])
def test_mutated_data_files_end_in_a_clear_error_or_data(tmp_path: Path, kind: str) -> None:
    x = np.random.default_rng(3).normal(size=(40, 8, 8, 1)).astype(np.float32)
    if kind == "npy":
        np.save(tmp_path / "seed.npy", x)
    elif kind == "png":
        hf.image_folder(tmp_path / "seed")
    else:
        save = np.savez if kind == "npz" else np.savez_compressed
        save(tmp_path / "seed.npz", x=x, y=np.arange(40))
    rng = np.random.default_rng(4)
    for i in range(MUTANTS_PER_KIND):
        if kind == "png":
            folder = hf.image_folder(tmp_path / f"m{i}")
            target = folder / "dog" / "1.png"
            target.write_bytes(_mutate(target.read_bytes(), rng))
            path = folder
        else:
            suffix = ".npy" if kind == "npy" else ".npz"
            seed = (tmp_path / f"seed{suffix}").read_bytes()
            path = tmp_path / f"m{i}{suffix}"
            path.write_bytes(_mutate(seed, rng))
        try:
            _read_everything(path)
        except LiteparityError as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip()


def test_mutated_model_files_never_pass_the_guard_with_a_traceback(
    evil: tuple[Path, Path], cnn: Path, tmp_path: Path
) -> None:
    """The guards read what an attacker controls (HDF5 attributes, zip directories): every
    mutation of a real ``.h5`` and a real ``.keras`` ends in a ``ModelError`` or passes."""
    rng = np.random.default_rng(5)
    for seed, check in ((evil[0], lambda p: check_h5(p, unsafe=False)), (cnn, check_keras_archive)):
        content = seed.read_bytes()
        for i in range(MUTANTS_PER_KIND):
            path = tmp_path / f"m{i}{seed.suffix}"
            path.write_bytes(_mutate(content, rng))
            try:
                check(path)
            except ModelError as exc:
                assert "\n" not in str(exc).strip()
    assert not evil[1].exists()
    with zipfile.ZipFile(cnn) as archive:
        assert "config.json" in archive.namelist()


def test_nan_outputs_are_counted_not_hidden_as_zero_error() -> None:
    from liteparity.measure.metrics import ErrorAccumulator

    acc = ErrorAccumulator()
    reference = np.ones((4, 3), np.float32)
    candidate = reference.copy()
    candidate[:2] = np.nan  # half the samples, 6 of 12 values
    candidate[3, 0] = np.inf
    acc.update([reference], [candidate])
    got = acc.metrics()
    assert got["non_finite_share"] == 7 / 12
    assert math.isnan(got["max_abs_error"])  # Python's max() used to drop the NaN: 0.0
    clean = ErrorAccumulator()
    clean.update([reference], [reference])
    assert clean.metrics()["non_finite_share"] == 0.0 and clean.metrics()["max_abs_error"] == 0.0
