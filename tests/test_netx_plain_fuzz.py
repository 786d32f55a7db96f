"""Property: a mutated plain NetX file loads or fails with one NetFormatError line, as spikereg files do.

The valid file is written by `write_sequential_net` with the datasets lava-dl's `export_hdf5` writes (the two are
the same, `tests/test_netx_compat.py`); the mutations are those of `tests/test_export_fuzz.py`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_export_fuzz import _mutate

from spikereg_deploy.errors import NetFormatError
from spikereg_deploy.export.layers import LayerRecord, int_array, int_value
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.writer import write_sequential_net

CUBA = {"type": "CUBA", "iDecay": int_value(1024), "vDecay": int_value(123), "vThMant": int_value(64),
        "refDelay": int_value(1), "gradedSpike": np.bool_(False)}


def _records() -> list[LayerRecord]:
    rng = np.random.default_rng(0)
    conv = {"shape": int_array((4, 4, 4)), "inChannels": int_value(1), "outChannels": int_value(4),
            "kernelSize": int_array((3, 3)), "stride": int_array((2, 2)), "padding": int_array((1, 1)),
            "dilation": int_array((1, 1)), "groups": int_value(1),
            "weight": (rng.integers(-100, 100, (4, 1, 3, 3)) * 2).astype(np.float32)}
    dense = {"shape": int_array((3,)), "inFeatures": int_value(64), "outFeatures": int_value(3),
             "weight": (rng.integers(-100, 100, (3, 64)) * 2).astype(np.float32)}
    return [LayerRecord("input", {"shape": int_array((1, 8, 8))}), LayerRecord("conv", conv, dict(CUBA)),
            LayerRecord("flatten", {"shape": int_array((64, 1, 1))}), LayerRecord("dense", dense, dict(CUBA))]


def _valid() -> tuple[bytes, list[str], list[str], str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plain.net"
        write_sequential_net(path, _records())
        names: list[str] = []
        datasets: list[str] = []

        def collect(name: str, obj: object) -> None:  # visititems stops at the first non-None return
            names.append(name)
            if isinstance(obj, h5py.Dataset):
                datasets.append(name)

        with h5py.File(path, "r") as f:
            f.visititems(collect)
        return path.read_bytes(), sorted(names), sorted(datasets), read_net(path).spec.architecture_fingerprint()


VALID, NAMES, DATASETS, FINGERPRINT = _valid()
MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(["7", "x", "weights", "neuron", "delay"])),
    st.tuples(st.just("retype"), st.sampled_from(DATASETS),
              st.sampled_from(["float", "int32", "uint8", "bool", "text", "bytes", "scalar", "huge", "negative",
                               "empty", "shorter", "longer", "2d", "nan"])),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
)


def test_valid_plain_file_loads() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plain.net"
        path.write_bytes(VALID)
        loaded = read_net(path)
        assert loaded.source == "netx" and [layer.name for layer in loaded.spec.layers] == \
            ["input", "conv1", "dense3"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_plain_files_load_or_fail_cleanly(mutations: list[tuple]) -> None:
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
        else:  # what still loads is the same network (a mutation of an unused detail, e.g. an int32 copy)
            assert loaded.spec.architecture_fingerprint() == FINGERPRINT
