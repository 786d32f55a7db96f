"""The multi-threshold graded neuron (CUBA-MT): its step against a hand-computed trace, the binary soft-reset neuron
as its one-level case, payload for payload in SLAYER, the reference engine, Lava and lava-nc's stock graded
synapses, graded events counted apart from SynOps, and its bad input."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from engine_agreement import assert_three_engines_agree

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.network import NetworkSpec
from spikereg_deploy.neurons import MultiThresholdNeuron, SoftResetNeuron, neuron_model
from spikereg_deploy.simulators.lava_builder import message_bits
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig, build_unet_spec

#: iDecay 4096, vDecay 0 (IF), threshold (the payload unit) 10 << 6 = 640, half start 320, at most 5 per step.
MT = MultiThresholdNeuron(4096, 0, 10, half_threshold_start=True, payload_bits=3, max_payload=5)
#: a_in per step; u = a_in << 6 (iDecay 4096 forgets u); v = v + u; k = clamp(ceil(v / 640) - 1, 0, 5); v -= 640 k
HAND_TRACE = [
    # a_in, v before the spike, payload k, v after
    (5, 320 + 320, 0, 640),      # exactly on the first threshold: strict `>`, no spike, the voltage kept
    (5, 640 + 320, 1, 320),      # 960 > 640: one level
    (20, 320 + 1280, 2, 320),    # 1600: above 640 and 1280, not 1920
    (10, 320 + 640, 1, 320),     # 960 -> 1
    (30, 320 + 1920, 3, 320),    # exactly 3 x 640 + 320: three levels
    (10, 320 + 640, 1, 320),
    (100, 320 + 6400, 5, 3520),  # 6720 would be 10 levels: clamped at 5, the residue 3520 kept
    (0, 3520, 5, 320),           # the residue is sent in the next step (5 more levels)
    (-10, 320 - 640, 0, -320),   # below zero: nothing sent, nothing subtracted
]


def _run_trace(neuron, inputs):
    state = neuron.init_state((1,), np)
    out = []
    for a_in in inputs:
        state, payload = neuron.step(state, np.array([a_in], dtype=np.int64))
        out.append((int(payload[0]), int(state[1][0])))
    return out


def test_step_matches_the_hand_computed_trace():
    assert MT.initial_voltage == 320
    got = _run_trace(MT, [row[0] for row in HAND_TRACE])
    assert got == [(k, v_after) for _a, _v, k, v_after in HAND_TRACE]
    _, payload = MT.step(MT.init_state((2,), torch), torch.tensor([100, 0]))
    assert payload.dtype == torch.int64 and payload.tolist() == [5, 0]  # torch and numpy share the one definition


def test_one_level_is_the_binary_soft_reset_neuron():
    rng = np.random.default_rng(0)
    inputs = rng.integers(-40, 120, 200).tolist()
    binary = SoftResetNeuron(4096, 0, 10, half_threshold_start=True)
    one_level = MultiThresholdNeuron(4096, 0, 10, half_threshold_start=True, payload_bits=2, max_payload=1)
    assert _run_trace(one_level, inputs) == _run_trace(binary, inputs)


def test_registry_netx_fields_and_event_cost():
    assert neuron_model("CUBA-MT") is MultiThresholdNeuron
    assert MT.event_cost == "multiply" and MT.payload_bits == 3 and MT.graded
    fields = MT.to_netx_fields()
    assert fields == {"type": "CUBA-MT", "iDecay": 4096, "vDecay": 0, "vThMant": 10, "halfThresholdStart": True,
                      "refDelay": 1, "gradedSpike": True, "payloadBits": 3, "maxPayload": 5}
    assert MultiThresholdNeuron.from_netx_fields(fields, "layer/1/neuron") == MT
    default = MultiThresholdNeuron.from_float(1.0, current_decay=1.0, voltage_decay=0.0)
    assert (default.payload_bits, default.max_payload, default.vth_mant) == (4, 15, 64)  # Spiking-UNet's 4 bits


@pytest.mark.parametrize(("change", "match"), [
    ({"payloadBits": 9}, "field 'payloadBits': payload_bits must be in \\[2, 8\\], got 9: the synapse models take"),
    ({"payloadBits": 1}, "field .payloadBits.: payload_bits must be in \\[2, 8\\], got 1: .*1 bit is a binary "
                         "spike: CUBA-SR"),
    ({"maxPayload": 8}, "field 'maxPayload': neuron max_payload must be in \\[1, 7\\], got 8"),
    ({"gradedSpike": False}, "field 'gradedSpike': a CUBA-MT neuron sends graded spikes: gradedSpike must be true"),
])
def test_bad_netx_fields_are_one_line(change, match):
    with pytest.raises(NetFormatError, match=f"^layer/2/neuron: {match}") as err:
        MultiThresholdNeuron.from_netx_fields({**MT.to_netx_fields(), **change}, "layer/2/neuron")
    assert "\n" not in str(err.value)


def test_binary_models_refuse_the_graded_flag():
    with pytest.raises(SpikeRegError, match="CUBA-SR neuron sends binary spikes .*need the multi-threshold model"):
        SoftResetNeuron(4096, 0, 10, graded=True)


def test_a_graded_layer_into_a_binary_only_synapse_is_refused():
    spec = build_unet_spec(UNetConfig(encoder=(4, 8), decoder=(4, 4), neuron_model="CUBA-MT", current_decay=1.0,
                                      voltage_decay=0.0, payload_bits=4))
    graded = [edge for edge in spec.edges() if edge.payload == "graded"]
    assert graded and all(edge.payload_bits == 4 for edge in graded)
    assert message_bits(graded[0], 24) == 4
    with pytest.raises(SpikeRegError, match=f"^layer '{graded[0].src}' sends 4-bit graded payloads, but its synapse "
                                            f"into '{graded[0].dst}' takes binary spikes only$"):
        message_bits(graded[0], 0)
    with pytest.raises(SpikeRegError, match="takes messages of at most 3 bits"):
        message_bits(graded[0], 3)


def test_unet_config_payload_keys():
    with pytest.raises(SpikeRegError, match="payload_bits and max_payload are for graded neurons"):
        UNetConfig(payload_bits=3)
    config = UNetConfig(neuron_model="CUBA-MT", current_decay=1.0, voltage_decay=0.0, payload_bits=3, max_payload=6)
    assert build_unet_spec(config).layer("enc0").neuron.max_payload == 6
    assert UNetConfig.from_dict(config.to_dict()) == config


# -- the training module ---------------------------------------------------------------------------------------
def test_training_module_is_the_integer_step_and_differentiates_every_level():
    rng = np.random.default_rng(3)
    a_in = rng.integers(-60, 400, size=(2, 8, 5, 6)).astype(np.int64)
    module = MT.training_module()
    x = torch.as_tensor(a_in, dtype=torch.float32) / 64
    state, want = MT.init_state(a_in.shape[:-1], np), []
    for t in range(a_in.shape[-1]):
        state, payload = MT.step(state, a_in[..., t])
        want.append(payload)
    want = np.stack(want, -1)
    assert len(np.unique(want)) >= 4  # several payload values: a real comparison
    with torch.no_grad():
        np.testing.assert_array_equal(module.eval()(x).numpy(), want.astype(np.float32))
    x.requires_grad_(True)
    trained = module.train()(x)
    np.testing.assert_array_equal(trained.detach().numpy(), want.astype(np.float32))
    # one step from v = 0 (no half start): the derivative is the sum of SLAYER's surrogate at every level
    plain = dataclasses.replace(MT, half_threshold_start=False).training_module()  # payload unit 10 / 64
    v = torch.tensor([[[0.125], [0.5]]], requires_grad=True)  # on the integer grid (8 / 64, 32 / 64)
    plain(v).sum().backward()
    tau, scale, unit = 10 / 64 * 100, 0.1, 10 / 64
    want_grad = [sum(scale / 2 / tau * np.exp(-abs(x0 - k * unit) / tau) for k in range(1, 6)) for x0 in (0.125, 0.5)]
    np.testing.assert_allclose(v.grad.flatten().numpy(), want_grad, rtol=1e-5)


# -- a U-Net in every engine -----------------------------------------------------------------------------------
@pytest.fixture(params=["analog", "bias"])
def mt_model(request, small_config):
    config = dataclasses.replace(small_config, neuron_model="CUBA-MT", current_decay=1.0, voltage_decay=0.0,
                                 half_threshold_start=True, payload_bits=4, max_payload=6, time_steps=2,
                                 input_mode=request.param, threshold=0.5)
    return seeded_model(config, seed=3)


@pytest.mark.lava
def test_unet_payload_for_payload_in_training_module_engine_and_lava(mt_model):
    image = np.random.default_rng(2).random((2, 8, 8, 12)).astype(np.float32)
    ref = assert_three_engines_agree(mt_model, image)
    spec = mt_model.spec
    payloads = np.concatenate([np.stack(ref.spikes[layer.name]).ravel() for layer in spec.layers if layer.spiking])
    assert payloads.max() > 1 and (payloads > 1).sum() > 50  # graded: not just binary spikes
    for layer in spec.layers[1:]:
        c = ref.counts[layer.name]
        analog_fed = layer.inputs == ("input",)
        assert c.synops == 0  # no binary spike anywhere: every spiking edge carries payloads
        assert (c.graded_synops > 0) == (not analog_fed)
        assert (c.input_macs > 0) == analog_fed
        if layer.spiking:
            recorded = np.stack(ref.spikes[layer.name])
            assert c.payload_sum == int(recorded.sum()) and c.spikes == int((recorded != 0).sum())


@pytest.mark.lava
def test_stock_lava_graded_synapses_agree(tiny_skip_net):
    """lava-nc's own Sparse synapses with num_message_bits = the payload bits multiply the payloads exactly as the
    project's synapse models and the reference engine do (an independent implementation of the graded synapse)."""
    spec, weights, _ = tiny_skip_net
    graded = MultiThresholdNeuron(4096, 0, 20, half_threshold_start=True, payload_bits=4, max_payload=9)
    layers = tuple(dataclasses.replace(layer, neuron=graded) if layer.neuron is not None else layer
                   for layer in spec.layers)
    spec = NetworkSpec(layers=layers, time_steps=3, input_channels=1)
    from spikereg_deploy.simulators.stock_lava import run_stock_lava

    image = np.random.default_rng(4).random((1, 6, 8, 10)).astype(np.float32)
    reference = IntegerNetwork(spec, weights).run(image, record_spikes=True)
    assert max(int(np.stack(reference.spikes[name]).max()) for name in "abc") > 1  # payloads above 1 sent
    run = run_stock_lava(spec, weights, image)
    readout_equal, spikes_equal = run.agreement(reference)
    assert readout_equal and spikes_equal == {"a": True, "b": True, "c": True}


# -- the .net file ----------------------------------------------------------------------------------------------
def test_net_round_trip_and_a_bad_payload_width_is_one_line(tmp_path, mt_model, capsys):
    import h5py

    from spikereg_deploy.cli import simulate_cli
    from spikereg_deploy.export.reader import read_net
    from spikereg_deploy.export.writer import write_net

    path = tmp_path / "m.net"
    write_net(path, mt_model.spec, mt_model.integer_weights(), (8, 8, 8))
    loaded = read_net(str(path))
    assert loaded.spec.model_fingerprint() == mt_model.spec.model_fingerprint()
    assert loaded.spec.layer("enc1").neuron == mt_model.spec.layer("enc1").neuron
    with h5py.File(path, "r+") as f:
        del f["layer/2/neuron/payloadBits"]
        f["layer/2/neuron/payloadBits"] = np.int64(12)
    assert simulate_cli.main([str(path), "-o", str(tmp_path / "sim"), "--engine", "reference",
                              "--input-shape", "8", "8", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err
    assert "layer/2/neuron: field 'payloadBits': payload_bits must be in [2, 8], got 12" in err
    assert not (tmp_path / "sim").exists()
