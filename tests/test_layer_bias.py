"""Per-channel layer biases (`layer/<i>/bias`): a hand trace, the engine equals Lava with biases at every depth,
the file round trip, and bad biases refused with one line."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_lava import _assert_same

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.export.layers import BASE_FORMAT_VERSION, BIAS_FORMAT_VERSION
from spikereg_deploy.export.reader import format_summary, read_net, summarize
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.layer_bias import bias_key, bias_start_step, split_parameters
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.simulators.lava_builder import run_lava
from spikereg_deploy.training.snn import seeded_model


def _with_biases(spec: NetworkSpec, weights: dict, seed: int, low: int = -300, high: int = 300) -> dict:
    rng = np.random.default_rng(seed)
    params = dict(weights)
    for layer in spec.layers[1:]:
        params[bias_key(layer.name)] = rng.integers(low, high, layer.out_channels)
    return params


def test_hand_trace_of_a_biased_layer() -> None:
    """Zero weights: every neuron of channel c integrates only its bias, v = v (1 - vDecay/4096) + (b_c << 6), and
    spikes (reset to 0) when v > vThMant << 6; the readout adds its bias at every step."""
    neuron = NeuronSpec(i_decay=4096, v_decay=512, vth_mant=100)
    spec = NetworkSpec(layers=(
        LayerSpec("input", "input", 1, kernel=1, padding=0),
        LayerSpec("a", "conv", 2, inputs=("input",), neuron=neuron),
        LayerSpec("readout", "readout", 3, inputs=("a",)),
    ), time_steps=6, input_channels=1)
    bias = np.array([37, -5])
    params = {"a": np.zeros((2, 1, 3, 3, 3)), "readout": np.zeros((3, 2, 3, 3, 3)),
              bias_key("a"): bias, bias_key("readout"): np.array([4, 0, -7])}
    run = IntegerNetwork(spec, params).run(np.zeros((1, 4, 4, 4)), record_spikes=True)
    for c, b in enumerate(bias):
        v = 0
        for t in range(spec.time_steps):
            kept = v * (4096 - 512)
            v = (abs(kept) >> 12) * (1 if kept >= 0 else -1) + (b << 6)
            spike = v > 100 << 6
            v = 0 if spike else v
            assert (run.spikes["a"][t][c] == spike).all(), (c, t)
    assert sum(int(s[0].sum()) for s in run.spikes["a"]) == 64  # channel 0 fires once (step 4), every voxel
    np.testing.assert_array_equal(run.readout_sum[:, 0, 0, 0], np.array([4, 0, -7]) * spec.time_steps)


def test_bias_changes_the_run_and_counts_no_synops(tiny_skip_net) -> None:
    spec, weights, _rng = tiny_skip_net
    image = np.random.default_rng(2).random((1, 8, 8, 8))
    plain = IntegerNetwork(spec, weights).run(image)
    biased = IntegerNetwork(spec, _with_biases(spec, weights, seed=3, low=-400, high=-200)).run(image)
    assert biased.counts["a"].spikes < plain.counts["a"].spikes  # negative biases: fewer spikes
    assert [c.synops for c in biased.counts.values()] != [c.synops for c in plain.counts.values()]
    assert not np.array_equal(biased.readout_sum, plain.readout_sum)
    zero = {**weights, **{bias_key(n): np.zeros(spec.layer(n).out_channels) for n in ("a", "b", "c", "readout")}}
    np.testing.assert_array_equal(IntegerNetwork(spec, zero).run(image).readout_sum, plain.readout_sum)


@pytest.mark.lava
def test_lava_equals_engine_with_biases_at_every_depth(tiny_skip_net) -> None:
    """Biases start when each layer's first input arrives (depth 1, 2, 3 and the readout), so Lava fixed_pt
    equals the engine spike for spike and count for count."""
    spec, weights, _rng = tiny_skip_net
    params = _with_biases(spec, weights, seed=5, low=-20, high=60)
    assert sorted({bias_start_step(spec, n) for n in ("a", "b", "c")}) == [1, 2, 3]
    image = np.random.default_rng(1).random((1, 8, 8, 8))
    ref, _lava = _assert_same(spec, params, image)
    assert all(ref.counts[n].spikes > 0 for n in ("a", "b", "c"))
    stepped = run_lava(spec, params, image, progress=True)  # one run call per step: the writes happen there too
    np.testing.assert_array_equal(stepped.readout_sum, ref.readout_sum)


@pytest.mark.lava
@pytest.mark.parametrize("changes", [dict(neuron_model="CUBA-SR"), dict(input_mode="bias"), dict(neuron_model="IF"),
                                     dict(neuron_model="CUBA-MT"), dict(neuron_model="SDNN", threshold=0.05)],
                         ids=["cuba-sr-process", "input-mode-bias", "if", "cuba-mt", "sdnn"])
def test_lava_equals_engine_on_a_biased_unet(small_config, pair16, changes) -> None:
    """The U-Net (skips with delays) with a bias on every layer, for every neuron model's Lava process (lava-nc's
    LIF and SigmaDelta, the project's CUBA-SR / CUBA-MT), and input_mode "bias", where the first layer's bias is its
    input current plus its own bias."""
    model = seeded_model(dataclasses.replace(small_config, **changes), seed=2)
    low, high = (-2, 3) if changes.get("neuron_model") == "SDNN" else (-40, 80)  # SDNN's bias enters << 12
    params = _with_biases(model.spec, model.integer_weights(), seed=4, low=low, high=high)
    ref, _ = _assert_same(model.spec, params, pair16)
    assert sum(c.spikes for c in ref.counts.values()) > 100


def test_net_round_trip_keeps_biases(tmp_path: Path, tiny_skip_net) -> None:
    spec, weights, _rng = tiny_skip_net
    params = _with_biases(spec, weights, seed=6)
    params[bias_key("b")] = np.zeros(4)  # an all-zero bias is no bias: not written
    path = tmp_path / "biased.net"
    write_net(path, spec, params, (8, 8, 8))
    with h5py.File(path) as f:
        assert f["spikereg/formatVersion"][()] == BIAS_FORMAT_VERSION
        assert f["layer/1/bias"].dtype == np.float32 and "bias" not in f["layer/2"]
    loaded = read_net(path)
    _w, biases = split_parameters(loaded.weights)
    assert sorted(biases) == ["a", "c", "readout"]
    for name, bias in biases.items():
        np.testing.assert_array_equal(bias, params[bias_key(name)])
    assert "bias (mant, exp 6)" in format_summary(summarize(loaded))
    write_net(tmp_path / "plain.net", spec, weights, (8, 8, 8))
    with h5py.File(tmp_path / "plain.net") as f:
        assert f["spikereg/formatVersion"][()] == BASE_FORMAT_VERSION  # older readers still read bias-free files
    assert "bias" not in format_summary(summarize(read_net(tmp_path / "plain.net")))


@pytest.mark.parametrize(("bias", "message"), [
    (np.zeros(2), r"bias shape \(2,\) != expected \(3,\)"),
    (np.array([1, 2, 5000]), r"13-bit mantissa range \[-4096, 4095\]"),
    (np.array([1.5, 0, 0]), "not integer mantissas"),
])
def test_writer_refuses_bad_biases(tmp_path: Path, tiny_skip_net, bias, message) -> None:
    spec, weights, _rng = tiny_skip_net
    with pytest.raises(SpikeRegError, match=message):
        write_net(tmp_path / "bad.net", spec, {**weights, bias_key("a"): bias}, (8, 8, 8))
    with pytest.raises(SpikeRegError, match="unknown layer 'nope'"):
        write_net(tmp_path / "bad.net", spec, {**weights, bias_key("nope"): np.zeros(1)}, (8, 8, 8))
    assert not (tmp_path / "bad.net").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: _replace(f, "layer/1/bias", np.zeros(5, np.float32)), r"layer/1: bias shape \(5,\) does not match"),
    (lambda f: _replace(f, "layer/1/bias", np.array([9000, 0, 0], np.float32)), "13-bit mantissa range"),
    (lambda f: _replace(f, "layer/1/bias", np.array([0.25, 0, 0])), "not integer mantissas"),
    (lambda f: _replace(f, "layer/1/bias", np.array([b"x", b"y", b"z"])), "bias has dtype"),
    (lambda f: f.create_dataset("layer/0/bias", data=np.zeros(1)), "input layer must not have a bias"),
])
def test_reader_refuses_bad_biases_with_one_line(tmp_path: Path, tiny_skip_net, edit, message) -> None:
    spec, weights, _rng = tiny_skip_net
    path = tmp_path / "model.net"
    write_net(path, spec, _with_biases(spec, weights, seed=7), (8, 8, 8))
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(NetFormatError, match=message) as err:
        read_net(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    result = subprocess.run([sys.executable, "-m", "spikereg_deploy.cli.export_cli", "--check", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


def _replace(f: h5py.File, key: str, data: np.ndarray) -> None:
    del f[key]
    f.create_dataset(key, data=data)
