"""Input as bias (`input_mode = "bias"`): the first layer's static current computed once and held as its neurons'
bias. The integer step by hand, three engines bit-exact, the MACs counted once, the bias range, `.net` and energy."""
from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch
from engine_agreement import assert_three_engines_agree

from spikereg_deploy.cli.energy_cli import main as energy_main
from spikereg_deploy.counting import analog_input_macs, analog_macs_per_step
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.neurons import CubaNeuron, IfNeuron
from spikereg_deploy.quantization import BIAS_MANT_MAX, BIAS_MANT_MIN
from spikereg_deploy.simulators.simulation import BIAS_INPUT_MACS_UNIT, build_report, simulate
from spikereg_deploy.training.event_hooks import count_events
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig

T = 2


def _hand_net(input_mode: str) -> tuple[NetworkSpec, dict[str, np.ndarray], np.ndarray]:
    """input (1 ch, 4^3) -> 'a' (1x1x1 conv: one real tap per neuron) -> readout (3 ch, k3 p1); two voxels at 1."""
    neuron = NeuronSpec(i_decay=4096, v_decay=4096, vth_mant=64)
    spec = NetworkSpec(layers=(
        LayerSpec("input", "input", 1, kernel=1, padding=0),
        LayerSpec("a", "conv", 1, inputs=("input",), kernel=1, padding=0, neuron=neuron),
        LayerSpec("readout", "readout", 3, inputs=("a",), kernel=3, padding=1),
    ), time_steps=T, input_channels=1, input_mode=input_mode)
    weights = {"a": np.full((1, 1, 1, 1, 1), 254), "readout": np.full((3, 1, 3, 3, 3), 2)}
    image = np.zeros((1, 4, 4, 4), dtype=np.float32)
    image[0, 0, 0, 0] = image[0, 1, 1, 1] = 1.0  # payload 255: bias (254 x 255) >> 8 = 252, far above threshold
    return spec, weights, image


# -- the integer step ----------------------------------------------------------------------------------------
def test_cuba_biased_step_by_hand():
    """v = trunc(v (4096 - 128) / 4096) + u + (3 << 6), u = 0 without synaptic input; threshold 10 << 6 = 640."""
    neuron = CubaNeuron(i_decay=1024, v_decay=128, vth_mant=10)
    state = neuron.init_state((1,), np)
    trace = []
    for _ in range(5):
        state, spikes = neuron.step_biased(state, np.zeros(1, dtype=np.int64), np.array([3]))
        trace.append((int(state[0][0]), int(state[1][0]), bool(spikes[0])))
    # 192; 186 + 192 = 378; 366 + 192 = 558; 540 + 192 = 732 > 640: spike, reset; 192 again
    assert trace == [(0, 192, False), (0, 378, False), (0, 558, False), (0, 0, True), (0, 192, False)]
    torch_state = neuron.init_state((1,), torch)
    for expected in trace:  # the torch path the reference engine takes gives the same integers
        torch_state, spk = neuron.step_biased(torch_state, torch.zeros(1, dtype=torch.int64), torch.tensor([3]))
        assert (int(torch_state[0][0]), int(torch_state[1][0]), bool(spk[0])) == expected


def test_if_biased_step_and_bias_plus_input():
    neuron = IfNeuron(vth_mant=10)
    state, spikes = neuron.step_biased(neuron.init_state((1,), np), np.array([2]), np.array([-1]))
    assert int(state[0][0]) == (2 << 6) - (1 << 6) and not spikes[0]


# -- three engines -------------------------------------------------------------------------------------------
@pytest.fixture
def bias_model(small_config):
    return seeded_model(dataclasses.replace(small_config, input_mode="bias"), seed=5)


@pytest.mark.lava
@pytest.mark.slow
def test_bias_unet_bit_exact_in_slayer_engine_and_lava(bias_model, small_config):
    image = np.random.default_rng(1).random((2, 8, 12, 16)).astype(np.float32)
    assert bias_model.spec.input_mode == "bias"
    ref = assert_three_engines_agree(bias_model, image)
    analog = IntegerNetwork(seeded_model(small_config, seed=5).spec, bias_model.integer_weights()).run(image)
    # the bias path is really taken: other dynamics (the current enters v, not u), other spikes, MACs once
    assert [c.spikes for c in ref.counts.values()] != [c.spikes for c in analog.counts.values()]
    assert ref.counts["enc0"].input_macs * small_config.time_steps == analog.counts["enc0"].input_macs > 0


def test_torch_hooks_count_the_macs_once(bias_model):
    image = np.random.default_rng(2).random((2, 8, 8, 8)).astype(np.float32)
    ref = IntegerNetwork(bias_model.spec, bias_model.integer_weights()).run(image).counts
    hooks = count_events(bias_model, image)
    key = lambda c: (c.spikes, c.input_spikes, c.synops, c.input_macs, c.neuron_updates)  # noqa: E731
    assert {n: key(c) for n, c in hooks.items()} == {n: key(c) for n, c in ref.items()}


# -- counting, by hand ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["reference", pytest.param("lava", marks=pytest.mark.lava)])
def test_hand_net_macs_once_and_same_spikes(engine):
    """A 1x1x1 conv on 4^3 has 64 real taps: the analog path pays 64 x T MACs, the bias path 64, same spikes."""
    counts = {}
    for mode in ("analog", "bias"):
        spec, weights, image = _hand_net(mode)
        counts[mode] = simulate(spec, weights, image, engine=engine, progress=False).counts
    assert counts["analog"]["a"].input_macs == 64 * T and counts["bias"]["a"].input_macs == 64
    for name in ("a", "readout"):
        assert counts["bias"][name].spikes_per_step == counts["analog"][name].spikes_per_step
        assert counts["bias"][name].synops_per_step == counts["analog"][name].synops_per_step
    assert counts["bias"]["a"].spikes == 4


def test_analog_input_macs_rule():
    spec, _, _ = _hand_net("bias")
    geo = spec.geometry((4, 4, 4))
    edge = spec.edges_into("a")[0]
    assert analog_input_macs(spec, geo, edge) == analog_macs_per_step(spec, geo, edge) == 64
    analog = dataclasses.replace(spec, input_mode="analog")
    assert analog_input_macs(analog, geo, edge) == 64 * T


# -- bad input -----------------------------------------------------------------------------------------------
def test_bias_outside_13_bit_mantissa_refused_naming_the_layer(bias_model):
    weights = bias_model.integer_weights()
    weights["enc0"] = np.full_like(weights["enc0"], 254)  # interior: 254 x 255 x 54 >> 8 = 13,660 > 4095
    image = np.ones((2, 8, 8, 8), dtype=np.float32)
    with pytest.raises(SpikeRegError, match=r"^layer 'enc0': input bias \d+ is outside Loihi's 13-bit bias "
                                            r"mantissa \[-4096, 4095\]"):
        IntegerNetwork(bias_model.spec, weights).run(image)
    assert (BIAS_MANT_MIN, BIAS_MANT_MAX) == (-4096, 4095)


def test_bias_needs_a_neuron_with_a_bias(small_config):
    """Every registered neuron model has a bias now (CUBA, IF, CUBA-SR); a readout fed by the input has none."""
    for model in ("CUBA", "IF", "CUBA-SR"):
        assert dataclasses.replace(small_config, neuron_model=model, input_mode="bias").input_mode == "bias"
    with pytest.raises(SpikeRegError, match="needs a neuron model with a bias"):
        NetworkSpec(layers=(LayerSpec("input", "input", 1, kernel=1, padding=0),
                            LayerSpec("readout", "readout", 3, inputs=("input",), kernel=1, padding=0)),
                    time_steps=T, input_channels=1, input_mode="bias")
    with pytest.raises(SpikeRegError, match="input_mode must be one of analog, bias"):
        UNetConfig(input_mode="spikes")


def test_analog_default_and_fingerprint(small_config):
    assert UNetConfig().input_mode == "analog"
    spec, _, _ = _hand_net("analog")
    biased = dataclasses.replace(spec, input_mode="bias")
    assert spec.architecture_fingerprint() == biased.architecture_fingerprint()
    assert spec.model_fingerprint() != biased.model_fingerprint()  # counts differ, so reports must not mix


# -- .net ----------------------------------------------------------------------------------------------------
def test_net_round_trip(tmp_path, bias_model):
    path = tmp_path / "bias.net"
    write_net(path, bias_model.spec, bias_model.integer_weights(), (8, 8, 8))
    with h5py.File(path) as f:
        assert f["spikereg/inputMode"][()].decode() == "bias"
    loaded = read_net(path)
    assert loaded.spec == bias_model.spec and loaded.spec.input_mode == "bias"
    with h5py.File(path, "r+") as f:
        del f["spikereg/inputMode"]
        f["spikereg/inputMode"] = np.bytes_("spikes")
    with pytest.raises(NetFormatError, match=r"inputMode 'spikes' is not one of analog, bias"):
        read_net(path)


def test_export_check_prints_the_input_mode(tmp_path, bias_model, capsys):
    from spikereg_deploy.cli import export_cli

    path = tmp_path / "bias.net"
    write_net(path, bias_model.spec, bias_model.integer_weights(), (8, 8, 8))
    assert export_cli.main(["--check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("input: bias (")


def test_analog_net_has_no_input_mode_field(tmp_path, small_config):
    model = seeded_model(small_config)
    path = tmp_path / "analog.net"
    write_net(path, model.spec, model.integer_weights(), (8, 8, 8))
    with h5py.File(path) as f:
        assert "inputMode" not in f["spikereg"]
    assert read_net(path).spec.input_mode == "analog"


# -- spikereg-energy -----------------------------------------------------------------------------------------
def test_energy_prices_the_macs_once(tmp_path):
    spec, weights, image = _hand_net("bias")
    report = build_report(simulate(spec, weights, image, engine="reference", progress=False), spec, (4, 4, 4))
    assert report["units"]["input_macs"] == BIAS_INPUT_MACS_UNIT and report["network"]["input_mode"] == "bias"
    (tmp_path / "report.json").write_text(json.dumps(report))
    write_net(tmp_path / "m.net", spec, weights, (4, 4, 4))
    rc = energy_main([str(tmp_path / "report.json"), "--net", str(tmp_path / "m.net"), "-o", str(tmp_path / "e")])
    assert rc == 0
    proxy = _find(json.loads((tmp_path / "e" / "energy.json").read_text()), "snn_analog_macs_measured")
    assert proxy["snn_analog_macs_measured"] == 64  # 64 real taps once, not 64 x T
    assert proxy["snn_energy_pJ"] == pytest.approx((24 + 81) * T * 0.9 + 64 * 4.6)
    graded = _find(json.loads((tmp_path / "e" / "energy.json").read_text()), "input_graded_ops")["input_graded_ops"]
    assert graded["value"] == 64 and "input as bias" in graded["how"]


def _find(doc, key: str) -> dict:
    """The (first) nested dict of a JSON document that holds `key`."""
    if isinstance(doc, dict):
        if key in doc:
            return doc
        doc = list(doc.values())
    for item in doc if isinstance(doc, list) else []:
        found = _find(item, key)
        if found:
            return found
    return {}


# -- the mapper ----------------------------------------------------------------------------------------------
def test_mapper_counts_a_bias_load_instead_of_input_injection(small_config):
    """Analog: input values x destination cores every step; bias: one mantissa per enc0 neuron, once; the input's
    projected graded ops are its real taps once."""
    from spikereg_deploy.mapping.plan import plan_mapping
    from spikereg_deploy.mapping.report import mapping_document

    shape = (8, 8, 8)
    spec = seeded_model(dataclasses.replace(small_config, input_mode="bias")).spec
    analog = seeded_model(small_config).spec
    biased, plain = plan_mapping(spec, shape, "loihi2"), plan_mapping(analog, shape, "loihi2")
    counts, plain_counts = biased.energy["counts"], plain.energy["counts"]
    geo = spec.geometry(shape)
    assert counts["host_input_packets"]["value"] == geo["enc0"].neurons
    assert counts["host_input_packets"]["unit"] == "bias values per inference"
    assert plain_counts["host_input_packets"]["value"] == plain.graph.host_inputs * small_config.time_steps > 0
    assert mapping_document(biased)["host_io_per_step"]["input_injection"] == 0
    macs = analog_macs_per_step(spec, geo, spec.edges_into("enc0")[0])
    assert counts["input_graded_ops"]["value"] == macs
    assert plain_counts["input_graded_ops"]["value"] == macs * small_config.time_steps
    assert "input as bias" in counts["input_graded_ops"]["how"]


@pytest.mark.parametrize("engine", ["reference", pytest.param("lava", marks=pytest.mark.lava)])
def test_simulate_cli_refuses_an_overflowing_bias_in_one_line(tmp_path, bias_model, engine, capsys):
    import nibabel as nib

    from spikereg_deploy.cli import simulate_cli

    weights = bias_model.integer_weights()
    weights["enc0"] = np.full_like(weights["enc0"], 254)
    write_net(tmp_path / "big.net", bias_model.spec, weights, (16, 16, 16))
    files = []
    for name in ("f", "m"):
        files.append(str(tmp_path / f"{name}.nii.gz"))
        nib.save(nib.Nifti1Image(np.ones((16, 16, 16), np.float32), np.eye(4)), files[-1])
    out = tmp_path / "out"
    rc = simulate_cli.main([str(tmp_path / "big.net"), "--fixed", files[0], "--moving", files[1], "-o", str(out),
                            "--engine", engine])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # besides the info line
    assert rc == 2 and len(errors) == 1, errors
    assert "layer 'enc0': input bias" in errors[0] and "13-bit bias mantissa" in errors[0]
    assert not out.exists()


# -- training ------------------------------------------------------------------------------------------------
def test_bias_unet_trains_and_checkpoints(tmp_path, bias_model):
    """The first layer's SLAYER neuron is CUBA with current_decay 1 (fed the bias), the rest keep the model's
    decays; surrogate gradients reach every synapse; a checkpoint keeps the input mode."""
    from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint

    first, second = bias_model.neurons["enc0"], bias_model.neurons["enc1"]
    assert float(first.current_decay) == 4096  # SLAYER keeps decays in 12-bit units
    assert float(second.current_decay) == pytest.approx(bias_model.spec.layer("enc1").neuron.i_decay)
    image = torch.as_tensor(np.random.default_rng(3).random((1, 2, 16, 16, 16)).astype(np.float32))
    bias_model.train()(image).displacement.square().mean().backward()
    grads = {name: syn.weight.grad for name, syn in bias_model.synapses.items()}
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads.values()), grads.keys()
    again = load_checkpoint(save_checkpoint(tmp_path / "bias.pt", bias_model))
    assert again.config.input_mode == "bias" and again.spec == bias_model.spec
    assert float(again.neurons["enc0"].current_decay) == 4096
