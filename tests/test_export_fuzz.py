"""Property: whatever happens to a .net file, read_net loads it or raises NetFormatError, never anything else.

Users hand the reader files from other versions, half-finished copies and hand edits; a traceback from h5py
or numpy instead of one line naming the file is a bug. Hypothesis mutates a valid small file at random.
Random bytes written *inside* the file are left out on purpose: a scribbled HDF5 global heap (which holds
the variable-length `neuron/type` strings lava-dl's format uses) can make libhdf5 itself loop, out of Python's
reach.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikereg_deploy.errors import NetFormatError
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.unet import UNetConfig, build_unet_spec

SPEC = build_unet_spec(UNetConfig(encoder=(4, 8), decoder=(4, 4), time_steps=2))


def _valid_file() -> tuple[bytes, list[str], list[str]]:
    rng = np.random.default_rng(0)
    weights = {layer.name: rng.integers(-128, 128, SPEC.weight_shape(layer.name)) * 2
               for layer in SPEC.layers if layer.kind != "input"}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.net"
        write_net(path, SPEC, weights, (8, 8, 8))
        names: list[str] = []
        datasets: list[str] = []

        def collect(name: str, obj: object) -> None:  # visititems stops at the first non-None return
            names.append(name)
            if isinstance(obj, h5py.Dataset):
                datasets.append(name)

        with h5py.File(path, "r") as f:
            f.visititems(collect)
        return path.read_bytes(), sorted(names), sorted(datasets)


VALID, NAMES, DATASETS = _valid_file()


def _retyped(old: np.ndarray, how: str) -> object:
    """A value of another type or shape for the same dataset."""
    flat = np.atleast_1d(old).reshape(-1)
    numeric = flat if flat.dtype.kind in "biuf" else np.arange(3)
    with np.errstate(invalid="ignore"):
        return _variants(numeric)[how]


def _variants(numeric: np.ndarray) -> dict[str, object]:
    return {
        "float": numeric.astype(np.float64) + 0.5,
        "int32": numeric.astype(np.int32),
        "uint8": numeric.astype(np.uint8),
        "bool": numeric.astype(bool),
        "text": "conv3d",
        "bytes": np.array([b"convT3d"], dtype="S10"),
        "scalar": np.int64(numeric[0]) if numeric.size else np.int64(0),
        "huge": np.int64(2**40),
        "negative": -np.abs(numeric.astype(np.int64)) - 1,
        "empty": np.zeros((0,), dtype=np.int64),
        "shorter": numeric[:-1],
        "longer": np.concatenate([numeric, numeric]),
        "2d": numeric.reshape(1, -1),
        "nan": np.full(numeric.shape, np.nan),
    }


MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES),
              st.sampled_from(["7", "x", "weights", "neuron", "99"])),
    st.tuples(st.just("retype"), st.sampled_from(DATASETS),
              st.sampled_from(["float", "int32", "uint8", "bool", "text", "bytes", "scalar", "huge",
                               "negative", "empty", "shorter", "longer", "2d", "nan"])),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
)


def _mutate(path: Path, mutation: tuple) -> None:
    kind = mutation[0]
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(mutation[1] * (len(data) - 1))])
        return
    with h5py.File(path, "r+") as f:
        name = mutation[1]
        if name not in f:  # an earlier mutation removed it (or its parent)
            return
        if kind == "drop":
            del f[name]
        elif kind == "rename":
            target = f"{name.rsplit('/', 1)[0]}/{mutation[2]}" if "/" in name else mutation[2]
            if target not in f:
                f.move(name, target)
        else:
            old = f[name][()]
            del f[name]
            f.create_dataset(name, data=_retyped(np.asarray(old), mutation[2]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_files_load_or_fail_cleanly(mutations: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.net"
        path.write_bytes(VALID)
        for mutation in mutations:
            try:
                _mutate(path, mutation)
            except (OSError, KeyError, ValueError, RuntimeError, TypeError):
                break  # an earlier truncation left a file h5py cannot edit: read it as it is
        try:
            loaded = read_net(path)
        except NetFormatError as err:
            assert path.name in str(err) and "\n" not in str(err)
        else:
            assert loaded.spec.architecture_fingerprint() == SPEC.architecture_fingerprint()


def test_unmutated_file_loads() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.net"
        path.write_bytes(VALID)
        assert read_net(path).spec == SPEC
