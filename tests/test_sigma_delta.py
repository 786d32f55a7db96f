"""The sigma-delta neuron (SDNN): its step against a hand-computed trace and against lava-nc's own `SigmaDelta`
fixed_pt model run in Lava, the training module against lava-dl's own sigma-delta neuron (forward and gradient),
payload for payload in SLAYER, the reference engine and Lava on a small U-Net (input as bias and analog), and its
bad input."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from engine_agreement import assert_three_engines_agree

from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.neurons import SigmaDeltaNeuron, neuron_model
from spikereg_deploy.simulators.lava_builder import message_bits
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig, build_unet_spec

#: vThMant 2: deltas are sent when |delta| >= 2 << 12 = 8192; payload = delta >> 6 (floor).
SD = SigmaDeltaNeuron(vth_mant=2)
HAND_TRACE = [
    # a_in, sigma, act = relu(sigma), delta = act - act_prev + residue, payload, residue after
    (10000, 10000, 10000, 10000, 156, 0),        # 10000 >= 8192: sent; 10000 >> 6 = 156 (the low 16 lost)
    (-3000, 7000, 7000, -3000, 0, -3000),        # |-3000| < 8192: held back as the residue
    (-6000, 1000, 1000, -9000, -141, 0),         # -6000 + (-3000) reaches the threshold: -9000 >> 6 = floor = -141
    (-5000, -4000, 0, -1000, 0, -1000),          # ReLU: the activation stops at 0
    (-20000, -24000, 0, -1000, 0, -1000),        # below zero nothing changes
    (40000, 16000, 16000, 15000, 234, 0),        # 16000 - 0 + (-1000) = 15000 >> 6 = 234
    (192, 16192, 16192, 192, 0, 192),            # a small change waits...
    (8000, 24192, 24192, 8192, 128, 0),          # ...exactly at the threshold (>=): 8192 >> 6 = 128
]


def _trace(neuron, inputs, bias=0):
    state = neuron.init_state((1,), np)
    rows = []
    for a_in in inputs:
        state, payload = neuron.step_biased(state, np.array([a_in], dtype=np.int64), bias)
        rows.append((int(state[0][0]), int(state[1][0]), int(payload[0]), int(state[2][0])))
    return rows


def test_step_matches_the_hand_computed_trace():
    got = _trace(SD, [row[0] for row in HAND_TRACE])
    assert got == [(sigma, act, p, res) for _a, sigma, act, _d, p, res in HAND_TRACE]
    # the bias enters the activation << 12; torch and numpy share the one definition
    state, payload = SD.step_biased(SD.init_state((2,), torch), torch.tensor([0, 0]), torch.tensor([3, 1]))
    assert payload.dtype == torch.int64 and payload.tolist() == [3 * 64, 0]  # 1 << 12 = 4096 < 8192: held
    assert state[2].tolist() == [0, 4096]


def test_registry_netx_fields_and_costs():
    assert neuron_model("SDNN") is SigmaDeltaNeuron
    assert SD.event_cost == "multiply" and SD.payload_bits == 16 and SD.graded and SD.supports_bias
    assert SD.to_netx_fields() == {"type": "SDNN", "activation": "relu", "vThMant": 2, "messageBits": 16}
    # lava-dl's export writes type, activation and vThMant only: messageBits then is netx's default, 16
    assert SigmaDeltaNeuron.from_netx_fields({"type": "SDNN", "activation": "relu", "vThMant": 2}, "n") == SD
    assert SigmaDeltaNeuron.from_float(0.05).vth_mant == 3  # lava-dl: int(threshold * 64)
    edges = build_unet_spec(UNetConfig(encoder=(4, 8), decoder=(4, 4), neuron_model="SDNN")).edges()
    graded = [edge for edge in edges if edge.payload == "graded"]
    assert graded and all(edge.payload_bits == 16 for edge in graded)
    with pytest.raises(SpikeRegError, match="sends 16-bit graded payloads, but its synapse into .* binary spikes"):
        message_bits(graded[0], 0)


@pytest.mark.parametrize(("change", "match"), [
    ({"messageBits": 25}, "field 'messageBits': messageBits must be in \\[2, 24\\], got 25: signed payloads"),
    ({"messageBits": 1}, "field 'messageBits': messageBits must be in \\[2, 24\\], got 1"),
    ({"activation": "sigmoid"}, "field 'activation': activation 'sigmoid' is not supported \\(lava-nc's SigmaDelta "
                                "computes relu\\)"),
    ({"vThMant": 0}, "field 'vThMant': neuron vth_mant must be in \\[1, 131071\\], got 0"),
    ({"refDelay": 1}, "unsupported SDNN neuron field\\(s\\) refDelay"),
])
def test_bad_netx_fields_are_one_line(change, match):
    with pytest.raises(NetFormatError, match=f"^layer/1/neuron: {match}") as err:
        SigmaDeltaNeuron.from_netx_fields({**SD.to_netx_fields(), **change}, "layer/1/neuron")
    assert "\n" not in str(err.value)


def test_payloads_beyond_the_message_and_states_beyond_int32_are_refused():
    narrow = SigmaDeltaNeuron(vth_mant=1, payload_bits=8)
    state = narrow.init_state((1,), np)
    narrow.step(state, np.array([127 << 6]))  # 127 fits a signed byte
    with pytest.raises(SpikeRegError, match="^an SDNN payload of 128 does not fit the 8-bit signed message "
                                            "\\(messageBits; at most 127\\)") as err:
        narrow.step(state, np.array([128 << 6]))
    assert "\n" not in str(err.value)
    with pytest.raises(SpikeRegError, match="beyond lava-nc's int32 sigma-delta registers"):
        SD.step(SD.init_state((1,), np), np.array([1 << 31]))
    deep = (np.array([-(1 << 30) - 5]), np.zeros(1, np.int64), np.zeros(1, np.int64))  # sigma far below zero
    with pytest.raises(SpikeRegError, match="beyond lava-nc's int32"):  # an input that only int64 holds
        SD.step(deep, np.array([(1 << 31) + 10]))


def test_unet_config_takes_sdnn_and_refuses_the_graded_keys():
    config = UNetConfig(encoder=(4, 8), decoder=(4, 4), neuron_model="SDNN", threshold=0.05, input_mode="bias")
    assert build_unet_spec(config).layer("enc0").neuron == SigmaDeltaNeuron(3)
    assert UNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(SpikeRegError, match="payload_bits and max_payload are for graded neurons"):
        UNetConfig(neuron_model="SDNN", payload_bits=8)


# -- against lava-nc's own SigmaDelta ----------------------------------------------------------------------------
@pytest.mark.lava
def test_step_equals_lava_ncs_own_sigma_delta_model():
    """lava-nc 0.10's `SigmaDelta` process with netx's parameters (ReLU, spike_exp = state_exp = 6), fed the same
    integer inputs by a RingBuffer in Lava's fixed_pt simulation, sends the same payloads as `step_biased`."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io
    from lava.proc.sdn.process import ActivationMode, SigmaDelta

    rng = np.random.default_rng(5)
    steps, n = 40, 64
    a_in = rng.integers(-30000, 30000, size=(n, steps)) * (rng.random((n, steps)) < 0.6)  # signed, sparse
    bias = rng.integers(-3, 4, size=n)
    neuron = SigmaDeltaNeuron(vth_mant=3)
    state, want = neuron.init_state((n,), np), []
    for t in range(steps):
        state, payload = neuron.step_biased(state, a_in[:, t], bias)
        want.append(payload)
    want = np.stack(want, axis=-1)
    assert (want > 0).sum() > 100 and (want < 0).sum() > 100 and (want == 0).sum() > 100  # every case occurs
    source = io.source.RingBuffer(data=a_in.astype(np.int32))
    sd = SigmaDelta(shape=(n,), vth=3, bias=bias, act_mode=ActivationMode.RELU, spike_exp=6, state_exp=6)
    sink = io.sink.RingBuffer(shape=(n,), buffer=steps)
    source.s_out.connect(sd.a_in)
    sd.s_out.connect(sink.a_in)
    try:
        sd.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = sink.data.get()
    finally:
        sd.stop()
    np.testing.assert_array_equal(got.astype(np.int64), want)


# -- the training module ---------------------------------------------------------------------------------------
def test_training_module_is_the_step_and_lava_dls_neuron_with_its_gradient():
    """Forward: the integer step, in eval and training mode. lava-dl's own `slayer.neuron.sigma_delta.Neuron`
    (ReLU) computes the same payloads in its units (input a_in / 2^18, output payload / 2^12) where float32 holds
    them exactly, and the same gradient: ours is lava-dl's."""
    from lava.lib.dl.slayer.neuron import sigma_delta

    rng = np.random.default_rng(3)
    a_in = rng.integers(-40000, 60000, size=(2, 6, 5, 12)) // 64 * 64  # on the grid where float32 is exact
    x = torch.as_tensor(a_in, dtype=torch.float32) / 64
    module = SD.training_module()
    state, want = SD.init_state(a_in.shape[:-1], np), []
    for t in range(a_in.shape[-1]):
        state, payload = SD.step(state, a_in[..., t])
        want.append(payload)
    want = np.stack(want, -1)
    assert (want < 0).sum() > 20 and (want > 0).sum() > 20
    with torch.no_grad():
        np.testing.assert_array_equal(module.eval()(x).numpy(), want.astype(np.float32))
    x.requires_grad_(True)
    ours = module.train()(x)
    np.testing.assert_array_equal(ours.detach().numpy(), want.astype(np.float32))
    theirs_in = (x.detach() / 4096).requires_grad_(True)
    lava_dl = sigma_delta.Neuron(threshold=SD.threshold, activation=torch.relu)
    theirs = lava_dl(theirs_in)
    np.testing.assert_array_equal((theirs.detach() * 4096).numpy(), want.astype(np.float32))
    weights = torch.as_tensor(rng.standard_normal(want.shape), dtype=torch.float32)
    (ours * weights).sum().backward()
    (theirs * 4096 * weights).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), theirs_in.grad.numpy() / 4096, rtol=1e-5, atol=1e-6)
    assert float(x.grad.abs().sum()) > 0


# -- a U-Net in every engine -----------------------------------------------------------------------------------
@pytest.fixture(params=["bias", "analog"])
def sd_model(request, small_config):
    config = dataclasses.replace(small_config, neuron_model="SDNN", threshold=0.05, input_mode=request.param,
                                 time_steps=3)
    return seeded_model(config, seed=3)


@pytest.mark.lava
def test_unet_payload_for_payload_in_training_module_engine_and_lava(sd_model):
    image = np.random.default_rng(2).random((2, 8, 8, 12)).astype(np.float32)
    ref = assert_three_engines_agree(sd_model, image)
    spec = sd_model.spec
    payloads = np.concatenate([np.stack(ref.spikes[layer.name]).ravel() for layer in spec.layers if layer.spiking])
    assert (payloads > 255).sum() > 100  # wide payloads, beyond any 8-bit message
    for layer in spec.layers[1:]:
        c = ref.counts[layer.name]
        analog_fed = layer.inputs == ("input",)
        assert c.synops == 0 and (c.graded_synops > 0) == (not analog_fed) and (c.input_macs > 0) == analog_fed
        if layer.spiking:
            recorded = np.stack(ref.spikes[layer.name])
            assert c.payload_sum == int(np.abs(recorded).sum()) and c.spikes == int((recorded != 0).sum())
    if spec.input_mode == "bias":  # the static input: every layer sends its activation once, at the first step
        assert all(not np.stack(ref.spikes[layer.name])[1:].any() for layer in spec.layers if layer.spiking)
    else:  # sigma integrates the current every step: the activation ramps, a delta about every step
        enc0 = np.stack(ref.spikes["enc0"])
        assert (enc0[1:] != 0).sum() > (enc0[0] != 0).sum()


# -- the tools end to end --------------------------------------------------------------------------------------
@pytest.mark.lava
def test_tools_run_an_sdnn_unet_and_refuse_payloads_beyond_the_message(tmp_path, capsys):
    """export --check, simulate (both engines: the same counts), energy; a payload too wide for its 16-bit message
    is one line, exit 2, in both engines (lava-nc's processes do not clip: the builder checks what they sent)."""
    import json

    from test_simulate_cli import _pair

    from spikereg_deploy.cli import energy_cli, export_cli, simulate_cli
    from spikereg_deploy.export.writer import write_net

    model = seeded_model(UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=1, neuron_model="SDNN",
                                    input_mode="bias", threshold=0.05), seed=1)
    fixed, moving = _pair(tmp_path)
    wide = tmp_path / "wide.net"  # random weights: dec0 sends a payload of 34744
    write_net(wide, model.spec, model.integer_weights(), (16, 16, 16))
    for engine in ("reference", "lava"):
        capsys.readouterr()
        assert simulate_cli.main([str(wide), "--fixed", fixed, "--moving", moving, "-o", str(tmp_path / engine),
                                  "--engine", engine]) == 2
        err = capsys.readouterr().err.strip()  # found during the run: after the progress lines, one error line
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "Traceback" not in err and "34744" in errors[0] and "16-bit" in errors[0], err
    path = tmp_path / "sd.net"
    write_net(path, model.spec, {k: (w // 8) * 2 for k, w in model.integer_weights().items()}, (16, 16, 16))
    assert export_cli.main(["--check", str(path)]) == 0
    assert "(SDNN, activation=relu, messageBits=16)" in capsys.readouterr().out
    reports = {}
    for engine in ("reference", "lava"):
        out = tmp_path / f"ok-{engine}"
        assert simulate_cli.main([str(path), "--fixed", fixed, "--moving", moving, "-o", str(out), "--engine",
                                  engine]) == 0
        reports[engine] = json.loads((out / "report.json").read_text())
    keys = ("spikes", "graded_synops", "payload_sum", "input_macs", "synops", "payload_bits")
    rows = {engine: [{k: row[k] for k in keys} for row in r["layers"]] for engine, r in reports.items()}
    assert rows["lava"] == rows["reference"] and rows["lava"][0]["spikes"] > 100
    assert energy_cli.main([str(tmp_path / "ok-lava" / "report.json"), "--net", str(path), "-o",
                            str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "energy.json").exists()


@pytest.mark.lava
def test_floating_pt_is_the_same_dynamics_in_float(small_config):
    """lava-nc's float SigmaDelta (exponents 0, threshold and bias in a_in / 64 units) tracks the integers: it only
    skips the floor of the payload, so with input as bias (one delta per neuron) the displacement differs by 0.1 %."""
    from spikereg_deploy.engine import IntegerNetwork
    from spikereg_deploy.simulators.lava_builder import run_lava

    config = dataclasses.replace(small_config, neuron_model="SDNN", threshold=0.05, input_mode="bias", time_steps=2)
    model = seeded_model(config, seed=3)
    weights = {name: (w // 4) * 2 for name, w in model.integer_weights().items()}
    image = np.random.default_rng(2).random((2, 8, 8, 12)).astype(np.float32)
    exact = IntegerNetwork(model.spec, weights).run(image).displacement
    floating = run_lava(model.spec, weights, image, tag="floating_pt", progress=False).displacement
    assert np.abs(exact).max() > 10
    assert np.linalg.norm(floating - exact) / np.linalg.norm(exact) < 0.01
