"""Every way a .net file can be wrong ends in one NetFormatError line that names the file and the problem."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.network import NetworkSpec
from spikereg_deploy.unet import UNetConfig, build_unet_spec

SHAPE = (8, 8, 8)
# Layers: 0 input, 1 enc0, 2 enc1 (stride 2), 3 bottleneck, 4 dec0 (convT), 5 dec1 ([dec0, enc0]), 6 readout.
SPEC = build_unet_spec(UNetConfig(encoder=(4, 8), decoder=(4, 4), time_steps=2))


def weights_for(spec: NetworkSpec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {layer.name: rng.integers(-128, 128, spec.weight_shape(layer.name)) * 2
            for layer in spec.layers if layer.kind != "input"}


def replace(f: h5py.File, key: str, value: object) -> None:
    del f[key]
    f.create_dataset(key, data=value)


def edit(path: Path, change: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as f:
        change(f)


@pytest.fixture
def net(tmp_path: Path) -> Path:
    path = tmp_path / "model.net"
    write_net(path, SPEC, weights_for(SPEC), SHAPE)
    return path


def expect_error(path: Path, match: str) -> NetFormatError:
    with pytest.raises(NetFormatError, match=match) as info:
        read_net(path)
    assert path.name in str(info.value) and "\n" not in str(info.value)
    return info.value


def test_valid_file_reads(net: Path) -> None:
    assert read_net(net).spec == SPEC


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "absent.net", "no such file")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "folder.net"
    folder.mkdir()
    expect_error(folder, "directory")


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "text.net"
    path.write_text("layer 0: input\n" * 50)
    expect_error(path, "not an HDF5 file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.net"
    path.write_bytes(b"")
    expect_error(path, "not an HDF5 file")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated(net: Path, keep: float) -> None:
    data = net.read_bytes()
    net.write_bytes(data[: int(len(data) * keep)])
    expect_error(net, "truncated|unreadable")


def test_plain_netx_file_has_no_extension(net: Path) -> None:
    edit(net, lambda f: f.__delitem__("spikereg"))
    expect_error(net, "missing 'spikereg/' group")


def test_newer_format(net: Path) -> None:
    edit(net, lambda f: replace(f, "spikereg/formatVersion", 3))
    expect_error(net, r"written by a newer spikereg-deploy \(format 3 > 2\)")


def test_unknown_layer_type(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/2/type", np.array([b"pool"], dtype="S10")))
    expect_error(net, r"layer/2: unknown layer type 'pool'")


@pytest.mark.parametrize("key", ["layer/1/kernelSize", "layer/4/outputPadding", "layer/2/neuron/vThMant",
                                 "layer/5/inputDelay", "layer/6/scale", "layer/3/weight",
                                 "spikereg/timeSteps", "layer/0/name", "layer/1/neuron"])
def test_missing_field(net: Path, key: str) -> None:
    edit(net, lambda f: f.__delitem__(key))
    expect_error(net, "missing (field|group) '" + key.rsplit("/", 1)[1] + "'")


@pytest.mark.parametrize(("key", "value", "match"), [
    ("layer/1/stride", np.array([1.0, 1.0, 1.0]), "dtype float64, expected integers"),
    ("layer/1/kernelSize", np.array([3, 3]), r"shape \(2,\), expected \(3,\)"),
    ("layer/2/outChannels", np.array([8]), "expected a scalar"),
    ("spikereg/inputShape", np.array([[8, 8, 8]]), "inputShape"),
    ("layer/1/neuron/type", 7, "must be a string"),
    ("layer/1/neuron/gradedSpike", 3, "scalar boolean"),
    ("layer/6/scale", np.array([1.0, 2.0]), "scalar number"),
    ("layer/6/scale", np.nan, "not finite"),
    ("layer/3/weight", np.array(["a", "b"], dtype="S1"), "dtype"),
])
def test_wrong_dtype_or_shape(net: Path, key: str, value: object, match: str) -> None:
    edit(net, lambda f: replace(f, key, value))
    expect_error(net, match)


@pytest.mark.parametrize(("bad", "match"), [
    (np.nan, "NaN or inf"), (np.inf, "NaN or inf"), (300.0, "out of the 8-bit range"),
    (-258.0, "out of the 8-bit range"), (1.5, "not integer")])
def test_bad_weight_values(net: Path, bad: float, match: str) -> None:
    def change(f: h5py.File) -> None:
        w = f["layer/2/weight"][()]
        w.flat[5] = bad
        replace(f, "layer/2/weight", w)

    edit(net, change)
    expect_error(net, "layer/2: weights .*" + match)


def test_weight_shape_inconsistent(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/2/weight", f["layer/2/weight"][()][:, :3]))
    expect_error(net, "weight shape .* does not match its channels and kernel")


def test_in_channels_inconsistent(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/5/inChannels", np.int64(9)))
    expect_error(net, "layer/5: inChannels 9 != 8")


def test_layer_shape_inconsistent_with_input_shape(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/2/shape", np.array([8, 8, 8, 8])))
    expect_error(net, r"layer/2: shape \[8, 8, 8, 8\] is inconsistent with inputShape")


def test_input_shape_the_network_cannot_take(net: Path) -> None:
    edit(net, lambda f: replace(f, "spikereg/inputShape", np.array([7, 8, 8])))
    expect_error(net, "inputShape")


def test_inputs_refer_to_later_layer(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/5/inputs", np.array([6, 1])))
    expect_error(net, "layer/5: inputs refer to layer 6, which is not an earlier layer")


def test_input_delay_not_what_timing_requires(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/5/inputDelay", np.array([0, 0])))
    expect_error(net, r"layer/5: inputDelay \[0, 0\] differs from what the graph's timing requires \[0, 3\]")


def test_fingerprint_mismatch(net: Path) -> None:
    edit(net, lambda f: replace(f, "spikereg/fingerprint", "0123456789abcdef"))
    expect_error(net, "fingerprint '0123456789abcdef' does not match")


def test_edited_geometry_caught_by_fingerprint(net: Path) -> None:
    edit(net, lambda f: replace(f, "layer/2/padding", np.array([1, 1, 0])))
    expect_error(net, "fingerprint")


@pytest.mark.parametrize(("key", "value", "match"), [
    ("layer/1/neuron/iDecay", 5000, "i_decay must be in"),
    ("layer/1/neuron/refDelay", 2, "refDelay"),
    ("layer/1/neuron/type", "LIF", "unsupported neuron type 'LIF'"),
    ("layer/2/name", "enc0", "duplicate layer name 'enc0'"),
    ("layer/1/name", "a/b", "must be non-empty and contain no '/'"),
    ("spikereg/timeSteps", 0, "time_steps must be positive"),
    ("layer/3/groups", 2, "groups == 1"),
])
def test_invalid_values_from_the_network_description(net: Path, key: str, value: object, match: str) -> None:
    edit(net, lambda f: replace(f, key, value))
    expect_error(net, match)


def test_stray_neuron_on_readout(net: Path) -> None:
    edit(net, lambda f: f.copy(f["layer/1/neuron"], "layer/6/neuron"))
    expect_error(net, "readout has no neurons")


def test_layer_numbering_gap(net: Path) -> None:
    edit(net, lambda f: f.move("layer/3", "layer/9"))
    expect_error(net, "named 0..n-1")


# -- the writer refuses bad weights and leaves nothing behind ---------------------------------------------
@pytest.mark.parametrize(("bad", "match"), [(np.nan, "NaN or inf"), (512, "out of the 8-bit range"),
                                            (0.5, "not integer")])
def test_write_net_refuses_bad_weights(tmp_path: Path, bad: float, match: str) -> None:
    weights = {k: v.astype(np.float64) for k, v in weights_for(SPEC).items()}
    weights["dec0"].flat[0] = bad
    path = tmp_path / "bad.net"
    with pytest.raises(SpikeRegError, match=f"dec0.*{match}"):
        write_net(path, SPEC, weights, SHAPE)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("change", "match"), [
    (lambda w: w.pop("enc1"), "no weights for layer"),
    (lambda w: w.__setitem__("extra", np.zeros(3)), "unknown layer"),
    (lambda w: w.__setitem__("enc1", w["enc1"][:, :2]), "weight shape"),
])
def test_write_net_refuses_mismatched_weights(tmp_path: Path, change: Callable, match: str) -> None:
    weights = weights_for(SPEC)
    change(weights)
    with pytest.raises(SpikeRegError, match=match):
        write_net(tmp_path / "bad.net", SPEC, weights, SHAPE)
    assert list(tmp_path.iterdir()) == []


def test_write_net_refuses_unsuitable_input_shape(tmp_path: Path) -> None:
    with pytest.raises(SpikeRegError, match="divisible"):
        write_net(tmp_path / "bad.net", SPEC, weights_for(SPEC), (7, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_file(net: Path) -> None:
    before = net.read_bytes()
    weights = weights_for(SPEC)
    weights["enc0"] = weights["enc0"] * 4
    with pytest.raises(SpikeRegError):
        write_net(net, SPEC, weights, SHAPE)
    assert net.read_bytes() == before and len(list(net.parent.iterdir())) == 1
