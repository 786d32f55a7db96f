"""The soft-reset CUBA neuron (`CUBA-SR`): hand-computed integer traces, parameters, NetX, training module, and the
three engines (training module in eval mode, reference engine, Lava fixed_pt) spike for spike on a small U-Net."""
from __future__ import annotations

import dataclasses
import math

import h5py
import numpy as np
import pytest
import torch
from engine_agreement import assert_three_engines_agree

from spikereg_deploy.cli import export_cli
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.neurons import NEURON_TYPES, NeuronModel, SoftResetNeuron, neuron_model
from spikereg_deploy.neurons.base import registered_lava_process
from spikereg_deploy.quantization import STATE_MAX
from spikereg_deploy.simulators.lava_builder import load_lava_processes, run_lava
from spikereg_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig, build_unet_spec

#: QCFS's IF: SoftResetNeuron(4096, 0, vth_mant=10, half start): threshold 10 << 6 = 640, v starts at 320.
#: (a_in, u after the step, v after the step, spike)
QCFS_TRACE = [
    (3, 192, 512, False),
    (2, 128, 640, False),  # exactly at the threshold: strict `>`, no spike
    (1, 64, 64, True),  # 704 > 640: spike, the residue 64 is kept
    (0, 0, 64, False),  # no leak
    (25, 1600, 1024, True),  # 1664 > 2 x 640: one spike per step, 1024 carries over ...
    (0, 0, 384, True),  # ... and spikes again without input
    (0, 0, 384, False),
    (-10, -640, -256, False),
    ((1 << 17) + 1, -(1 << 23) + 64, -STATE_MAX, False),  # 2^23 + 64 wraps in the current; v saturates low
    (1 << 17, 1 << 23, 1, False),  # 2^17 << 6 = 2^23 does not wrap (only above it)
    (1 << 17, 1 << 23, STATE_MAX - 640, True),  # 1 + 2^23 saturates at 2^23 - 1, then the threshold is subtracted
    (0, 0, STATE_MAX - 1280, True),
]

#: Leaky: SoftResetNeuron(1024, 128, vth_mant=10), v starts at 0. u keeps 3072/4096, v 3968/4096, truncated to 0.
LEAKY_TRACE = [
    (10, 640, 640, False),
    (0, 480, 460, True),  # v = trunc(640 x 0.96875) + 480 = 1100: spike, 460 left
    (0, 360, 165, True),  # trunc(460 x 0.96875) = 445, + 360 = 805
    (-5, -50, 109, False),
    (-3, -229, -124, False),  # trunc(-50 x 0.75) = -37 (towards zero) - 192
    (0, -171, -291, False),
    (1 << 17, 8_388_480, 8_387_559, True),  # -128 + 2^23 (no wrap); v = -281 + 8,388,480 - 640
    (1 << 16, -6_291_552, 1_833_255, True),  # 6,291,360 + 2^22 > 2^23 wraps by 2^24; v = 8,125,447 + u - 640
]

QCFS = dict(neuron_model="CUBA-SR", current_decay=1.0, voltage_decay=0.0)


# -- the integer step --------------------------------------------------------------------------------------
@pytest.mark.parametrize("xp", [np, torch])
@pytest.mark.parametrize(("neuron", "trace", "v0"), [
    (SoftResetNeuron(4096, 0, 10, half_threshold_start=True), QCFS_TRACE, 320),
    (SoftResetNeuron(1024, 128, 10), LEAKY_TRACE, 0),
])
def test_step_against_hand_computed_trace(xp, neuron, trace, v0):
    state = neuron.init_state((1,), xp)
    assert [int(s[0]) for s in state] == [0, v0] and all(s.dtype == xp.int64 for s in state)
    for t, (a_in, want_u, want_v, want_spike) in enumerate(trace):
        state, spikes = neuron.step(state, xp.asarray([a_in], dtype=xp.int64))
        assert (int(state[0][0]), int(state[1][0]), bool(spikes[0])) == (want_u, want_v, want_spike), t


def test_half_threshold_start_is_exact_and_set_per_inference():
    assert SoftResetNeuron(0, 0, 7, half_threshold_start=True).initial_voltage == 7 << 5  # (7 << 6) // 2
    assert SoftResetNeuron(0, 0, 7).initial_voltage == 0
    neuron = SoftResetNeuron(4096, 0, 10, half_threshold_start=True)
    once = neuron.init_state((3,), np)
    neuron.step(once, np.array([30, 0, -4]))
    assert neuron.init_state((3,), np)[1].tolist() == [320] * 3  # a fresh inference starts from v0 again


def test_soft_reset_keeps_what_reset_to_zero_throws_away():
    """Constant input 0.3 x threshold for T steps: soft reset loses nothing (0.3 T spikes but for the last, unfinished
    one: the strict `>`), reset to zero loses each spike's residue (one spike per 4 steps), and the half start makes
    the count round(0.3 T) instead of floor."""
    from spikereg_deploy.neurons import CubaNeuron

    a_in = np.full((1,), 3, dtype=np.int64)  # 3 << 6 = 192 = 0.3 x 640
    models = {"soft": SoftResetNeuron(4096, 0, 10), "zero": CubaNeuron(4096, 0, 10),
              "soft_half": SoftResetNeuron(4096, 0, 10, half_threshold_start=True)}
    counts = {}
    for key, neuron in models.items():
        state, total = neuron.init_state((1,), np), []
        for _ in range(100):
            state, spikes = neuron.step(state, a_in)
            total.append(int(spikes[0]))
        counts[key] = (sum(total[:10]), sum(total))
    assert counts == {"soft": (2, 29), "zero": (2, 25), "soft_half": (3, 30)}


# -- registry, parameters, config --------------------------------------------------------------------------
def test_registry_lookup_and_event_cost():
    assert "CUBA-SR" in NEURON_TYPES and neuron_model("CUBA-SR") is SoftResetNeuron
    assert issubclass(SoftResetNeuron, NeuronModel)
    assert SoftResetNeuron.payload_bits == 1 and SoftResetNeuron.event_cost == "add"


@pytest.mark.parametrize(("make", "match"), [
    (lambda: SoftResetNeuron(4097, 0, 64), "i_decay must be in"),
    (lambda: SoftResetNeuron(0, -1, 64), "v_decay must be in"),
    (lambda: SoftResetNeuron(0, 0, 0), "vth_mant must be in"),
    (lambda: SoftResetNeuron(0, 0, 64, half_threshold_start=1), "half_threshold_start must be a boolean"),
    (lambda: SoftResetNeuron(1024, 128, 64, half_threshold_start=True), "half-threshold start needs vDecay 0"),
    (lambda: SoftResetNeuron(0, 0, 64, ref_delay=2), "refDelay == 1"),
    (lambda: SoftResetNeuron(0, 0, 64, graded=True), "graded-spike"),
])
def test_bad_parameters_one_line(make, match):
    with pytest.raises(SpikeRegError, match=match) as err:
        make()
    assert "\n" not in str(err.value)


def test_from_float_and_thresholds():
    neuron = SoftResetNeuron.from_float(1.26, current_decay=1.0, voltage_decay=0.0, half_threshold_start=True)
    assert neuron == SoftResetNeuron(4096, 0, 80, half_threshold_start=True) and neuron.threshold == 1.25
    assert neuron.with_threshold(11).initial_voltage == 11 << 5  # calibration keeps the half start relative


def test_unet_config_accepts_cuba_sr():
    spec = build_unet_spec(UNetConfig(**QCFS, half_threshold_start=True, thresholds={"enc1": 2.0}))
    spiking = [layer for layer in spec.layers if layer.spiking]
    assert all(isinstance(layer.neuron, SoftResetNeuron) and layer.neuron.half_threshold_start for layer in spiking)
    assert spec.layer("enc1").neuron == SoftResetNeuron(4096, 0, 128, half_threshold_start=True)
    leaky = build_unet_spec(UNetConfig(neuron_model="CUBA-SR")).layer("enc0").neuron
    assert leaky == SoftResetNeuron(1024, 123, 64)  # CUBA's default decays
    assert UNetConfig.from_dict(UNetConfig(**QCFS, half_threshold_start=True).to_dict()).half_threshold_start
    assert spec.model_fingerprint != build_unet_spec(UNetConfig(**QCFS, thresholds={"enc1": 2.0})).model_fingerprint
    with pytest.raises(SpikeRegError, match="^half_threshold_start needs a neuron model that has it, not CUBA$"):
        UNetConfig(half_threshold_start=True)
    with pytest.raises(SpikeRegError, match="half-threshold start needs vDecay 0"):
        UNetConfig(neuron_model="CUBA-SR", half_threshold_start=True)
    with pytest.raises(SpikeRegError, match="must be true or false"):
        UNetConfig(**QCFS, half_threshold_start="yes")


def test_netx_fields_round_trip_and_errors():
    neuron = SoftResetNeuron(4096, 0, 77, half_threshold_start=True)
    fields = neuron.to_netx_fields()
    assert fields == {"type": "CUBA-SR", "iDecay": 4096, "vDecay": 0, "vThMant": 77, "halfThresholdStart": True,
                      "refDelay": 1, "gradedSpike": False}
    assert SoftResetNeuron.from_netx_fields(fields, "layer/1/neuron") == neuron
    with pytest.raises(NetFormatError, match="^layer/1/neuron: field 'halfThresholdStart': a half-threshold start"):
        SoftResetNeuron.from_netx_fields({**fields, "vDecay": 12}, "layer/1/neuron")
    missing = {k: v for k, v in fields.items() if k != "halfThresholdStart"}
    with pytest.raises(NetFormatError, match="missing field 'halfThresholdStart' for a CUBA-SR neuron"):
        SoftResetNeuron.from_netx_fields(missing, "layer/1/neuron")


def test_unregistered_lava_process_is_a_one_line_error():
    with pytest.raises(SpikeRegError, match="^layer 'x': no Lava process is registered for neuron type 'NOPE'"):
        registered_lava_process("NOPE", "x")


# -- the training module -----------------------------------------------------------------------------------
def _integer_spikes(neuron: SoftResetNeuron, a_in: np.ndarray) -> np.ndarray:
    state, out = neuron.init_state(a_in.shape[:-1], np), []
    for t in range(a_in.shape[-1]):
        state, spikes = neuron.step(state, a_in[..., t])
        out.append(spikes)
    return np.stack(out, -1)


@pytest.mark.parametrize("neuron", [SoftResetNeuron(1024, 123, 150), SoftResetNeuron(4096, 0, 90, True)])
def test_training_module_equals_integer_step_in_eval_and_training(neuron):
    rng = np.random.default_rng(0)
    a_in = rng.integers(-120, 200, size=(2, 16, 3, 24)).astype(np.int64)
    a_in[0, 0, 0, :4] = [1 << 17, 1 << 17, (1 << 17) + 5, -(1 << 17)]  # wrap and saturation: exact as well
    module = neuron.training_module()
    x = torch.as_tensor(a_in, dtype=torch.float32) / 64
    with torch.no_grad():
        evaluated = module.eval()(x)
    trained = module.train()(x.clone().requires_grad_(True))
    want = _integer_spikes(neuron, a_in)
    assert want.sum() > 100
    np.testing.assert_array_equal(evaluated.numpy(), want.astype(np.float32))
    np.testing.assert_array_equal(trained.detach().numpy(), want.astype(np.float32))


def test_training_module_gradient_is_slayers_surrogate():
    """One step from v = 0: the spike's derivative by the input is SLAYER CUBA's surrogate at v = input."""
    module = SoftResetNeuron(4096, 0, 64).training_module()  # threshold 1.0
    x = torch.tensor([[[0.5], [1.0], [1.5], [-2.0]]], requires_grad=True)
    module(x).sum().backward()
    tau, scale = 1.0 * 100, 1.0 * 0.1  # SLAYER's CUBA: tau_rho x TAU_RHO_MULT, scale_rho x SCALE_RHO_MULT
    want = [scale / 2 / tau * math.exp(-abs(v - 1.0) / tau) for v in (0.5, 1.0, 1.5, -2.0)]
    np.testing.assert_allclose(x.grad.flatten().numpy(), want, rtol=1e-6)
    # through time: a later spike's surrogate flows back to earlier inputs by the (no-leak) voltage filter
    x2 = torch.tensor([[[0.25, 0.25, 0.25]]], requires_grad=True)
    module(x2)[..., -1].sum().backward()
    assert (x2.grad > 0).all() and torch.allclose(x2.grad, x2.grad[..., :1].expand(1, 1, 3))


# -- a small U-Net in every engine ---------------------------------------------------------------------------
@pytest.fixture(params=[
    {"neuron_model": "CUBA-SR"},  # CUBA's leaky decays (1024, 123)
    QCFS,
    {**QCFS, "half_threshold_start": True},
], ids=["leaky", "if-zero-start", "if-half-start"])
def sr_model(request, small_config):
    return seeded_model(dataclasses.replace(small_config, **request.param), seed=5)


@pytest.mark.lava
@pytest.mark.slow
def test_unet_bit_exact_in_training_module_engine_and_lava(sr_model):
    image = np.random.default_rng(1).random((2, 8, 12, 16)).astype(np.float32)
    spec = sr_model.spec
    assert all(isinstance(layer.neuron, SoftResetNeuron) for layer in spec.layers if layer.spiking)
    ref = assert_three_engines_agree(sr_model, image)
    # counting: binary SynOps (adds) on every spiking edge; MACs only on the analog input, as for CUBA
    assert all(e.payload_bits == 1 and e.payload == "binary" for e in spec.edges() if e.payload != "analog")
    assert [n for n, c in ref.counts.items() if c.input_macs] == ["enc0"]


@pytest.mark.lava
@pytest.mark.parametrize(("tag", "steps"), [("fixed_pt", len(QCFS_TRACE)), ("floating_pt", 8)])
def test_lava_process_follows_the_hand_trace(tag, steps):
    """SoftResetLIF fed the QCFS trace has the trace's u, v and spikes at every step: fixed_pt all of it, wrap and
    saturation included; floating_pt (weight units, no 24-bit limits) the steps before the wrap, where float is
    exact."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    load_lava_processes()
    trace, floating = QCFS_TRACE[:steps], tag == "floating_pt"
    inputs = np.array([[a for a, *_ in trace]])
    state_unit = 4096 if floating else 1  # float states are the integers / 2^12, float inputs the integers / 64
    neuron = SoftResetNeuron(4096, 0, 10, half_threshold_start=True)
    source = Source(data=inputs / 64 if floating else inputs.astype(np.int32))
    process = neuron.lava_process((1,), tag, "sr")
    sink = Sink(shape=(1,), buffer=steps)
    source.s_out.connect(process.a_in)
    process.s_out.connect(sink.a_in)
    assert process.v.get()[0] * state_unit == 320  # before the run: the half-threshold start
    seen = []
    try:
        for _ in trace:
            process.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag=tag))
            seen.append((process.u.get()[0] * state_unit, process.v.get()[0] * state_unit))
        spikes = sink.data.get()[0].astype(bool).tolist()
    finally:
        process.stop()
    assert seen == [(u, v) for _, u, v, _ in trace]
    assert spikes == [s for *_, s in trace]


@pytest.mark.lava
def test_floating_pt_runs_and_tracks_fixed(small_config):
    """The float graph (float input, no 24-bit limits) is not bit-exact; it must run and follow the integers."""
    model = seeded_model(dataclasses.replace(small_config, **QCFS, half_threshold_start=True), seed=2)
    image = np.random.default_rng(7).random((2, 8, 8, 8)).astype(np.float32)
    fixed = run_lava(model.spec, model.integer_weights(), image, progress=False)
    floating = run_lava(model.spec, model.integer_weights(), image, tag="floating_pt", progress=False)
    assert floating.tag == "floating_pt" and np.isfinite(floating.displacement).all()
    assert sum(c.spikes for c in floating.counts.values()) > 0
    corr = np.corrcoef(fixed.displacement.ravel(), floating.displacement.ravel())[0, 1]
    assert corr > 0.5  # measured 0.83 here; the CUBA float graph is held to the same bound (tests/test_lava.py)


def test_unet_differs_from_cuba_and_half_start_matters(small_config):
    image = np.random.default_rng(1).random((2, 8, 8, 8)).astype(np.float32)
    weights = seeded_model(small_config, seed=5).integer_weights()
    runs = [IntegerNetwork(build_unet_spec(dataclasses.replace(small_config, **changes)), weights).run(image)
            for changes in ({}, {"neuron_model": "CUBA-SR"}, QCFS, {**QCFS, "half_threshold_start": True})]
    spikes = [[c.spikes for c in run.counts.values()] for run in runs]
    assert spikes[0] != spikes[1] and spikes[2] != spikes[3]


def test_unet_trains_and_checkpoints(tmp_path, small_config):
    """Surrogate gradients reach every synapse, the threshold probes work, and a checkpoint keeps the model."""
    model = seeded_model(dataclasses.replace(small_config, **QCFS, half_threshold_start=True), seed=5)
    image = torch.as_tensor(np.random.default_rng(3).random((1, 2, 16, 16, 16)).astype(np.float32))
    probes = {name: torch.zeros((), requires_grad=True) for name in model.neurons}
    model.train()(image, threshold_probes=probes).displacement.square().mean().backward()
    grads = {name: syn.weight.grad for name, syn in model.synapses.items()}
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads.values()), grads.keys()
    assert any(float(p.grad.abs()) > 0 for p in probes.values())
    again = load_checkpoint(save_checkpoint(tmp_path / "sr.pt", model))
    assert again.config.neuron_model == "CUBA-SR" and again.config.half_threshold_start
    assert again.spec == model.spec


# -- .net files ---------------------------------------------------------------------------------------------
def test_net_round_trip_and_check_prints_it(tmp_path, small_config, capsys):
    model = seeded_model(dataclasses.replace(small_config, **QCFS, half_threshold_start=True), seed=5)
    ckpt = save_checkpoint(tmp_path / "sr.pt", model)
    path = tmp_path / "sr.net"
    assert export_cli.main([str(ckpt), "-o", str(path), "--input-shape", "8", "8", "8"]) == 0
    with h5py.File(path, "r") as f:
        group = f["layer/1/neuron"]
        assert group["type"][()] == b"CUBA-SR" and group["iDecay"][()] == 4096 and group["vThMant"][()] == 64
        assert group["halfThresholdStart"].dtype == np.bool_ and bool(group["halfThresholdStart"][()])
    loaded = read_net(path)
    assert loaded.spec == model.spec
    image = np.random.default_rng(2).random((2, 8, 8, 8)).astype(np.float32)
    before = IntegerNetwork(model.spec, model.integer_weights()).run(image)
    after = IntegerNetwork(loaded.spec, loaded.weights).run(image)
    np.testing.assert_array_equal(before.readout_sum, after.readout_sum)
    capsys.readouterr()
    assert export_cli.main(["--check", str(path)]) == 0
    assert "4096/0/64 (CUBA-SR, halfThresholdStart=True)" in capsys.readouterr().out


def test_net_with_a_leaking_half_start_refused_in_one_line(tmp_path, small_config):
    model = seeded_model(dataclasses.replace(small_config, **QCFS, half_threshold_start=True), seed=5)
    path = tmp_path / "bad.net"
    write_net(path, model.spec, model.integer_weights(), (8, 8, 8))
    with h5py.File(path, "r+") as f:
        del f["layer/2/neuron/vDecay"]
        f["layer/2/neuron/vDecay"] = np.int64(100)
    with pytest.raises(NetFormatError) as err:
        read_net(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "layer/2/neuron: field 'halfThresholdStart': a half-threshold start needs vDecay 0" in message


@pytest.mark.slow
def test_conversion_and_fine_tuning_with_soft_reset():
    """Conversion calibrates CUBA-SR thresholds (the half start follows them), fine-tuning lowers the loss, and the
    trained model is still exactly what the reference engine runs."""
    from spikereg_deploy.training.ann import AnnUNet
    from spikereg_deploy.training.conversion import convert
    from spikereg_deploy.training.train import TrainConfig, training_step

    torch.manual_seed(2)
    config = UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=3, **QCFS, half_threshold_start=True)
    ann = AnnUNet(config)
    images = torch.nn.functional.avg_pool3d(torch.rand(2, 2, 16, 16, 16, generator=torch.Generator().manual_seed(2)),
                                            5, 1, 2)
    snn, report = convert(ann, images, bisection_steps=4)
    assert all(isinstance(snn.spec.layer(r.name).neuron, SoftResetNeuron) for r in report)
    assert {snn.spec.layer(r.name).neuron.vth_mant for r in report} != {64}  # calibrated, not the default
    cfg = TrainConfig(stage="snn", lr=3e-3, sparsity_weight=0.1, reg_weight=0.1, ncc_window=5)
    opt = torch.optim.Adam(snn.train().parameters(), lr=cfg.lr)
    losses = [float(training_step(snn, opt, images[:, :1], images[:, 1:], cfg)[0]) for _ in range(8)]
    assert min(losses[-3:]) < losses[0]
    with torch.no_grad():
        result = snn.eval()(images[:1])
    run = IntegerNetwork(snn.spec, snn.integer_weights()).run(images[0].numpy(), record_spikes=True)
    for name, spikes in result.spikes.items():
        np.testing.assert_array_equal(np.moveaxis(spikes[0].numpy() > 0, -1, 0), np.stack(run.spikes[name]))
