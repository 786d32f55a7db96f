"""write_net -> read_net gives back the same NetworkSpec and integer weights; the file is in lava-dl style."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from spikereg_deploy.export.layers import BASE_FORMAT_VERSION
from spikereg_deploy.export.reader import format_summary, read_net, summarize
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.fixed_point import INPUT_BITS
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.unet import UNetConfig, build_unet_spec


def random_weights(spec: NetworkSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid 8-bit mantissas (even integers in [-256, 254]) in the writer's layouts."""
    rng = np.random.default_rng(seed)
    return {layer.name: rng.integers(-128, 128, spec.weight_shape(layer.name)) * 2
            for layer in spec.layers if layer.kind != "input"}


def custom_spec() -> NetworkSpec:
    """Not a U-Net: default-geometry input, odd kernels and strides, a skip concat, non-default neurons."""
    a = NeuronSpec(i_decay=512, v_decay=4096, vth_mant=80)
    b = NeuronSpec(i_decay=4096, v_decay=0, vth_mant=1)
    return NetworkSpec(layers=(
        LayerSpec("vol", "input", 1),
        LayerSpec("a", "conv", 3, inputs=("vol",), kernel=(3, 1, 5), padding=(1, 0, 2), neuron=a),
        LayerSpec("b", "conv", 5, inputs=("a",), kernel=3, stride=(2, 1, 2), padding=1, neuron=b),
        LayerSpec("c", "convT", 2, inputs=("b",), kernel=3, stride=(2, 1, 2), padding=1,
                  output_padding=(1, 0, 1), neuron=a),
        LayerSpec("out", "readout", 3, inputs=("c", "a"), kernel=1, padding=0),
    ), time_steps=5, input_channels=1, readout_scale=0.3, name="custom net")


def test_default_unet_round_trip(tmp_path: Path) -> None:
    spec = build_unet_spec(UNetConfig())
    weights = random_weights(spec, seed=1)
    path = tmp_path / "model.net"
    write_net(path, spec, weights, (16, 16, 16), description="random weights")
    loaded = read_net(path)
    assert loaded.spec == spec
    assert loaded.spec.architecture_fingerprint() == spec.architecture_fingerprint()
    assert loaded.input_shape == (16, 16, 16)
    assert loaded.format_version == BASE_FORMAT_VERSION
    assert loaded.description == "random weights"
    assert sorted(loaded.weights) == sorted(weights)
    for name, w in weights.items():
        assert loaded.weights[name].dtype == np.int64
        np.testing.assert_array_equal(loaded.weights[name], w, err_msg=name)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic writer left no temporary behind


def test_custom_spec_round_trip_and_summary(tmp_path: Path) -> None:
    spec = custom_spec()
    weights = random_weights(spec, seed=2)
    path = tmp_path / "custom.net"
    write_net(path, spec, weights, (6, 5, 8))
    loaded = read_net(path)
    assert loaded.spec == spec and loaded.spec.readout_scale == 0.3 and loaded.spec.name == "custom net"
    for name, w in weights.items():
        np.testing.assert_array_equal(loaded.weights[name], w, err_msg=name)

    rows = summarize(loaded)
    geo = spec.geometry((6, 5, 8))
    assert [r["name"] for r in rows] == ["vol", "a", "b", "c", "out"]
    assert [r["type"] for r in rows] == ["input", "conv3d", "conv3d", "convT3d", "readout"]
    assert rows[3]["shape"] == [2, *geo["c"].out_shape] and rows[3]["neurons"] == geo["c"].neurons
    assert rows[4]["synapses"] == weights["out"].size and rows[4]["neurons"] == 0
    delays = {(e.src, e.dst): e.delay for e in spec.edges()}
    assert [(s["name"], s["delay"]) for s in rows[4]["inputs"]] == [("c", 0), ("a", delays[("a", "out")])]
    assert rows[1]["neuron"] == {"iDecay": 512, "vDecay": 4096, "vThMant": 80, "refDelay": 1}
    text = format_summary(rows)
    assert "convT3d" in text and "c(0), a(2)" in text and "total:" in text


def test_file_layout_is_netx_style(tmp_path: Path) -> None:
    spec = custom_spec()
    path = tmp_path / "custom.net"
    write_net(path, spec, random_weights(spec), (6, 5, 8), description="d")
    with h5py.File(path, "r") as f:
        assert sorted(f["layer"].keys(), key=int) == [str(i) for i in range(len(spec.layers))]
        t = f["layer/0/type"]
        assert t.dtype == np.dtype("S10") and t.shape == (1,) and t[0] == b"input"
        assert list(f["layer/0/shape"][()]) == [1, 6, 5, 8] and "neuron" not in f["layer/0"]
        conv = f["layer/1"]
        assert conv["type"][0] == b"conv3d" and conv["weight"].shape == (3, 1, 3, 1, 5)
        assert conv["weight"].dtype == np.float32  # as lava-dl writes it
        assert conv["neuron/type"][()] == b"CUBA" and conv["neuron/iDecay"][()] == 512
        assert conv["neuron/gradedSpike"].dtype == np.bool_
        assert f["layer/3/type"][0] == b"convT3d" and list(f["layer/3/outputPadding"][()]) == [1, 0, 1]
        assert f["layer/3/weight"].shape == (5, 2, 3, 3, 3)  # ConvTranspose3d layout (Cin, Cout, k...)
        out = f["layer/4"]
        assert list(out["inputs"][()]) == [3, 1] and list(out["inputDelay"][()]) == [0, 2]
        assert out["scale"].dtype == np.float64 and out["scale"][()] == 0.3
        assert out["name"][()] == b"out"
        root = f["spikereg"]
        assert root["formatVersion"][()] == BASE_FORMAT_VERSION and root["inputBits"][()] == INPUT_BITS
        assert list(root["inputShape"][()]) == [6, 5, 8] and root["timeSteps"][()] == 5
        assert root["fingerprint"][()].decode() == spec.architecture_fingerprint()
        assert root["modelFingerprint"][()].decode() == spec.model_fingerprint()


@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.float64])
def test_reader_accepts_other_integer_weight_dtypes(tmp_path: Path, dtype: type) -> None:
    """netx casts weights with astype(int), so any dtype holding exact integers is a valid file."""
    spec = custom_spec()
    weights = random_weights(spec)
    path = tmp_path / "x.net"
    write_net(path, spec, weights, (6, 5, 8))
    with h5py.File(path, "r+") as f:
        data = f["layer/2/weight"][()]
        del f["layer/2/weight"]
        f.create_dataset("layer/2/weight", data=data.astype(dtype))
    np.testing.assert_array_equal(read_net(path).weights["b"], weights["b"])
