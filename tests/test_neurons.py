"""Neuron models through the registry: parameters, NetX fields, the IF integer step, and IF bit-exact in all engines."""
from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
import torch
from engine_agreement import assert_three_engines_agree

from spikereg_deploy.engine import IntegerNetwork, estimate_engine_memory
from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.export.reader import format_summary, read_net, summarize
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.network import NeuronSpec
from spikereg_deploy.neurons import NEURON_TYPES, CubaNeuron, IfNeuron, NeuronModel, neuron_model
from spikereg_deploy.quantization import STATE_MAX
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig, build_unet_spec

#: (a_in, voltage after the step, spike) for IfNeuron(vth_mant=10): threshold 10 << 6 = 640, strict `>`.
IF_TRACE = [
    (3, 192, False), (4, 448, False), (4, 0, True),  # 704 > 640: spike, reset to 0
    (-2, -128, False), (20, 0, True),
    (0, 0, False), (10, 640, False), (0, 640, False),  # exactly at threshold: no spike, no leak
    (1, 0, True),
    ((1 << 17) + 1, -(1 << 23) + 64, False),  # (2^17 + 1) << 6 = 2^23 + 64 wraps in the 24-bit input current
    (-(1 << 16), -STATE_MAX, False),  # -(2^23 - 64) - 2^22: the voltage saturates at -(2^23 - 1)
    (-(1 << 16), -STATE_MAX, False),
    (1 << 17, 1, False),  # 2^17 << 6 = 2^23 is still in range (lava wraps only above it)
    (5, 321, False),
]


# -- registry and parameters -------------------------------------------------------------------------------
def test_registry_lookup_and_unknown_type():
    assert NEURON_TYPES == ("CUBA", "IF", "CUBA-SR", "CUBA-MT", "SDNN")
    assert neuron_model("CUBA") is CubaNeuron and neuron_model("IF") is IfNeuron
    assert NeuronSpec is CubaNeuron  # the historical name still works
    for model in (CubaNeuron, IfNeuron):
        assert issubclass(model, NeuronModel) and model.payload_bits == 1 and model.event_cost == "add"
    with pytest.raises(SpikeRegError, match=r"unknown neuron type 'LIF' \(known: CUBA, IF, CUBA-SR, CUBA-MT, SDNN\)"):
        neuron_model("LIF")


@pytest.mark.parametrize(("make", "match"), [
    (lambda: CubaNeuron(5000, 0, 64), "i_decay must be in"),
    (lambda: CubaNeuron(-1, 0, 64), "i_decay must be in"),
    (lambda: CubaNeuron(1024, 0, 1.5), "vth_mant must be an integer"),
    (lambda: IfNeuron(0), "vth_mant must be in"),
    (lambda: IfNeuron(1 << 17), "vth_mant must be in"),
    (lambda: IfNeuron(True), "vth_mant must be an integer"),
    (lambda: IfNeuron(64, ref_delay=2), "refDelay == 1"),
    (lambda: IfNeuron(64, graded=True), "graded-spike"),
    (lambda: IfNeuron(64, graded=1), "graded must be a boolean"),
])
def test_parameter_validation(make, match):
    with pytest.raises(SpikeRegError, match=match):
        make()


def test_parameters_are_plain_ints_and_frozen():
    neuron = IfNeuron(np.int64(80))
    assert type(neuron.vth_mant) is int and neuron == IfNeuron(80)
    with pytest.raises(dataclasses.FrozenInstanceError):
        neuron.vth_mant = 3  # type: ignore[misc]


def test_thresholds_and_from_float():
    cuba = CubaNeuron.from_float(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
    assert (cuba.i_decay, cuba.v_decay, cuba.vth_mant, cuba.threshold) == (1024, 123, 80, 1.25)
    assert cuba.with_threshold(100) == CubaNeuron(1024, 123, 100)
    neuron = IfNeuron.from_float(1.26)  # truncated to the mantissa grid, as SLAYER exports
    assert neuron.vth_mant == 80 and neuron.with_threshold(7).threshold == 7 / 64
    with pytest.raises(SpikeRegError, match="vth_mant"):
        neuron.with_threshold(0)


def test_netx_fields_round_trip_and_errors():
    neuron = IfNeuron(77)
    fields = neuron.to_netx_fields()
    assert fields == {"type": "IF", "vThMant": 77, "refDelay": 1, "gradedSpike": False}
    assert IfNeuron.from_netx_fields(fields, "layer/1/neuron") == neuron
    assert list(CubaNeuron(1, 2, 3).to_netx_fields()) == ["type", "iDecay", "vDecay", "vThMant", "refDelay",
                                                          "gradedSpike"]
    with pytest.raises(NetFormatError, match=r"^layer/1/neuron: field 'vThMant': neuron vth_mant must be in"):
        IfNeuron.from_netx_fields({**fields, "vThMant": 0}, "layer/1/neuron")
    with pytest.raises(NetFormatError, match="unsupported IF neuron field.*iDecay"):
        IfNeuron.from_netx_fields({**fields, "iDecay": 4096}, "layer/1/neuron")
    with pytest.raises(NetFormatError, match="missing field 'refDelay'"):
        IfNeuron.from_netx_fields({"type": "IF", "vThMant": 3, "gradedSpike": False}, "layer/1/neuron")


def test_unet_config_neuron_model():
    spec = build_unet_spec(UNetConfig(neuron_model="IF", thresholds={"enc1": 2.0}))
    spiking = [layer for layer in spec.layers if layer.spiking]
    assert all(isinstance(layer.neuron, IfNeuron) for layer in spiking)
    assert spec.layer("enc1").neuron == IfNeuron(128) and spec.layer("enc0").neuron == IfNeuron(64)
    legacy = UNetConfig().to_dict()
    del legacy["neuron_model"]  # checkpoints written before the field existed
    assert UNetConfig.from_dict(legacy).neuron_model == "CUBA"
    assert UNetConfig.from_dict(UNetConfig(neuron_model="IF").to_dict()).neuron_model == "IF"
    with pytest.raises(SpikeRegError, match="unknown neuron type 'SRM'"):
        UNetConfig(neuron_model="SRM")
    cuba_bytes = estimate_engine_memory(build_unet_spec(UNetConfig()), (16, 16, 16))
    assert estimate_engine_memory(spec, (16, 16, 16)) < cuba_bytes  # one state array instead of two


# -- the IF integer step -----------------------------------------------------------------------------------
@pytest.mark.parametrize("xp", [np, torch])
def test_if_step_against_hand_computed_trace(xp):
    neuron = IfNeuron(vth_mant=10)
    (v,) = state = neuron.init_state((1,), xp)
    assert v.dtype == xp.int64 and len(state) == len(neuron.state_names) == 1
    for t, (a_in, want_v, want_spike) in enumerate(IF_TRACE):
        state, spikes = neuron.step(state, xp.asarray([a_in], dtype=xp.int64))
        assert (int(state[0][0]), bool(spikes[0])) == (want_v, want_spike), t


def test_if_positive_overflow_saturates_and_spikes():
    neuron = IfNeuron(vth_mant=(1 << 17) - 1)  # the largest threshold: (2^17 - 1) << 6 = 2^23 - 64
    (v,), spikes = neuron.step((np.array([STATE_MAX - 10, 8_388_000]),), np.array([1 << 16, 8]))
    assert spikes.tolist() == [True, False]  # saturated at 2^23 - 1 > threshold; 8,388,512 is not above it
    assert v.tolist() == [0, 8_388_512]


def test_if_training_module_equals_integer_step():
    """SLAYER's CUBA with current_decay 1 and voltage_decay 0 is the IF step while nothing saturates."""
    rng = np.random.default_rng(0)
    neuron = IfNeuron(vth_mant=150)
    a_in = rng.integers(-120, 160, size=(1, 64, 40)).astype(np.int64)
    with torch.no_grad():
        slayer = neuron.training_module()(torch.as_tensor(a_in, dtype=torch.float32) / 64).numpy() > 0
    state, ours = neuron.init_state(a_in.shape[:-1], np), []
    for t in range(a_in.shape[-1]):
        state, spikes = neuron.step(state, a_in[..., t])
        ours.append(spikes)
    assert slayer.sum() > 100
    np.testing.assert_array_equal(slayer, np.stack(ours, -1))


@pytest.mark.lava
def test_if_lava_process_equals_integer_step_including_wrap_and_saturation():
    """lava-nc's LIF with du = 4095, dv = 0 follows the hand trace step by step (voltage read every step)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    neuron = IfNeuron(vth_mant=10)
    source = Source(data=np.array([[a for a, _, _ in IF_TRACE]], dtype=np.int32))
    lif = neuron.lava_process((1,), "fixed_pt", "if")
    sink = Sink(shape=(1,), buffer=len(IF_TRACE))
    source.s_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    voltages = []
    try:
        for _ in IF_TRACE:
            lif.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            voltages.append(int(lif.v.get()[0]))
        spikes = sink.data.get()[0].astype(bool).tolist()
    finally:
        lif.stop()
    assert voltages == [v for _, v, _ in IF_TRACE]
    assert spikes == [s for _, _, s in IF_TRACE]


# -- a small IF U-Net in every engine ----------------------------------------------------------------------
@pytest.fixture
def if_model(small_config):
    return seeded_model(dataclasses.replace(small_config, neuron_model="IF"), seed=5)


@pytest.mark.lava
def test_if_unet_bit_exact_in_slayer_engine_and_lava(if_model):
    image = np.random.default_rng(1).random((2, 8, 12, 16)).astype(np.float32)
    assert all(isinstance(layer.neuron, IfNeuron) for layer in if_model.spec.layers if layer.spiking)
    assert_three_engines_agree(if_model, image)


def test_if_unet_differs_from_cuba(if_model, small_config):
    """The IF model is really used: the same weights with CUBA neurons spike differently."""
    image = np.random.default_rng(1).random((2, 8, 8, 8)).astype(np.float32)
    cuba_spec = build_unet_spec(small_config)
    weights = if_model.integer_weights()
    a = IntegerNetwork(if_model.spec, weights).run(image)
    b = IntegerNetwork(cuba_spec, weights).run(image)
    assert [c.spikes for c in a.counts.values()] != [c.spikes for c in b.counts.values()]


def test_if_unet_trains_and_checkpoints(tmp_path, if_model):
    """The SLAYER IF model gives surrogate gradients to every synapse and survives a checkpoint round trip."""
    from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint

    image = torch.as_tensor(np.random.default_rng(3).random((1, 2, 16, 16, 16)).astype(np.float32))
    if_model.train()(image).displacement.square().mean().backward()
    grads = {name: syn.weight.grad for name, syn in if_model.synapses.items()}
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads.values()), grads.keys()
    again = load_checkpoint(save_checkpoint(tmp_path / "if.pt", if_model))
    assert again.config.neuron_model == "IF" and again.spec == if_model.spec
    np.testing.assert_array_equal(again.integer_weights()["enc1"], if_model.integer_weights()["enc1"])


# -- .net files ---------------------------------------------------------------------------------------------
def test_if_net_round_trip(tmp_path, if_model):
    path = tmp_path / "if.net"
    write_net(path, if_model.spec, if_model.integer_weights(), (8, 8, 8))
    with h5py.File(path, "r") as f:
        group = f["layer/1/neuron"]
        assert set(group) == {"type", "vThMant", "refDelay", "gradedSpike"}
        assert group["type"][()] == b"IF" and group["vThMant"][()] == 64
        assert group["gradedSpike"].dtype == np.bool_
    loaded = read_net(path)
    assert loaded.spec == if_model.spec
    image = np.random.default_rng(2).random((2, 8, 8, 8)).astype(np.float32)
    before = IntegerNetwork(if_model.spec, if_model.integer_weights()).run(image)
    after = IntegerNetwork(loaded.spec, loaded.weights).run(image)
    np.testing.assert_array_equal(before.readout_sum, after.readout_sum)
    summary = format_summary(summarize(loaded))
    assert "-/-/64 (IF)" in summary and summarize(loaded)[1]["neuron"] == {"type": "IF", "vThMant": 64,
                                                                          "refDelay": 1}


def _edited_net(tmp_path, model, change) -> str:
    path = tmp_path / "m.net"
    write_net(path, model.spec, model.integer_weights(), (8, 8, 8))
    with h5py.File(path, "r+") as f:
        change(f)
    return str(path)


def test_unknown_neuron_type_refused_in_one_line(tmp_path, small_config):
    def rename(f: h5py.File) -> None:
        del f["layer/2/neuron/type"]
        f["layer/2/neuron/type"] = "SigmaDelta"

    path = _edited_net(tmp_path, seeded_model(small_config), rename)
    with pytest.raises(NetFormatError) as err:
        read_net(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(path)
    assert "layer/2/neuron: unsupported neuron type 'SigmaDelta' (known: CUBA, IF, CUBA-SR, CUBA-MT, SDNN)" in message


def test_if_net_with_a_cuba_field_or_bad_threshold_refused(tmp_path, if_model):
    path = _edited_net(tmp_path, if_model, lambda f: f.create_dataset("layer/1/neuron/iDecay", data=np.int64(4096)))
    with pytest.raises(NetFormatError, match="layer/1/neuron: unsupported IF neuron field.*iDecay"):
        read_net(path)

    def zero_threshold(f: h5py.File) -> None:
        del f["layer/3/neuron/vThMant"]
        f["layer/3/neuron/vThMant"] = np.int64(0)

    path = _edited_net(tmp_path, if_model, zero_threshold)
    with pytest.raises(NetFormatError) as err:
        read_net(path)
    assert str(err.value).startswith(f"{path}: layer/3/neuron: field 'vThMant': ")


# -- quantization constants --------------------------------------------------------------------------------
def test_quantization_constants_are_dependency_free_and_re_exported():
    import subprocess
    import sys

    from spikereg_deploy import fixed_point, quantization

    code = ("import sys\nimport spikereg_deploy.quantization as q\n"
            "assert not {'numpy', 'torch'} & set(sys.modules), sorted({'numpy', 'torch'} & set(sys.modules))\n"
            "print(q.STATE_LIMIT, q.THRESHOLD_MANT_MAX)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == [str(1 << 23), str((1 << 17) - 1)]
    for name in ("DECAY_BITS", "DECAY_UNITY", "ACTIVATION_SHIFT", "THRESHOLD_SHIFT", "STATE_BITS", "STATE_LIMIT",
                 "WEIGHT_SCALE", "WEIGHT_MIN", "WEIGHT_MAX", "INPUT_BITS", "INPUT_MAX", "INPUT_SHIFT"):
        assert getattr(fixed_point, name) == getattr(quantization, name), name
    assert quantization.decay_from_fraction(0.03) == 123 and quantization.threshold_mantissa(1.26) == 80
