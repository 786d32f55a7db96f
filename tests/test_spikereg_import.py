"""Importing SpikeReg reference checkpoints (`spikereg-export CKPT --from spikereg`): every tensor consumed, bad
checkpoints refused with one line naming the key, BN folding and the linear rewrites exact in float, the imported
file readable and runnable, and the one layer that maps exactly (enc0) equal to the float re-implementation of
SpikeReg's forward within the quantization."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikereg_deploy.cli.export_cli import main as export_main
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.spikereg_import import import_checkpoint
from spikereg_deploy.export.spikereg_model import BN_EPS, encoder_units, fold_batchnorm, validate
from spikereg_deploy.export.spikereg_reference import reference_forward
from spikereg_deploy.layer_bias import bias_key


def spikereg_state_dict(encoder=(16, 32, 64, 128), decoder=(64, 32, 16, 16), seed=0, gain=4.0):
    """A state dict with SpikeRegUNet's key names and shapes, written here from its module tree (models.py /
    layers.py at 09ed0b5f), independently of the importer's own table: SpikingConv3d = conv + bn + neurons
    buffers; encoder blocks 2-3 add a 1x1 shortcut; decoders: upconv (ConvTranspose3d) + refine, whose input is
    out + skip channels for 'concatenate' (blocks 0, 2) and out for 'average' / 'none' (blocks 1, 3)."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def spiking(prefix, cin, cout, k, transposed=False, tau=0.8):
        shape = (cin, cout, k, k, k) if transposed else (cout, cin, k, k, k)
        bound = gain / np.sqrt(np.prod(shape[1:]))
        sd[f"{prefix}.conv.weight"] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        sd[f"{prefix}.conv.bias"] = (torch.rand(cout, generator=gen) * 2 - 1) * 0.1
        sd[f"{prefix}.bn.weight"] = 0.8 + 0.4 * torch.rand(cout, generator=gen)
        sd[f"{prefix}.bn.bias"] = 0.05 * torch.randn(cout, generator=gen)
        sd[f"{prefix}.bn.running_mean"] = 0.05 * torch.randn(cout, generator=gen)
        sd[f"{prefix}.bn.running_var"] = 0.8 + 0.4 * torch.rand(cout, generator=gen)
        sd[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(7)
        sd[f"{prefix}.neurons.tau_u"] = torch.tensor(tau)
        sd[f"{prefix}.neurons.v_th"] = torch.tensor(1.0)
        sd[f"{prefix}.neurons.v_reset"] = torch.tensor(0.0)

    cin = 2
    for i, cout in enumerate(encoder):
        spiking(f"encoder_blocks.{i}.conv", cin, cout, 3)
        if i > 1:
            spiking(f"encoder_blocks.{i}.shortcut", cin, cout, 1)
        cin = cout
    spiking("bottleneck", encoder[-1], encoder[-1], 3)
    prev = encoder[-1]
    for i, cout in enumerate(decoder):
        skip = encoder[-(i + 2)] if i + 2 <= len(encoder) else encoder[0]
        spiking(f"decoder_blocks.{i}.upconv", prev, cout, 2, transposed=True)
        spiking(f"decoder_blocks.{i}.refine", cout + skip if i in (0, 2) else cout, cout, 3)
        prev = cout
    sd["output_projection.conv.weight"] = torch.randn((3, decoder[-1], 1, 1, 1), generator=gen) * 0.3
    sd["output_projection.conv.bias"] = torch.zeros(3)
    sd["output_projection.smooth.weight"] = torch.ones(3, 1, 3, 3, 3) / 27
    sd["spike_encoding_window"] = torch.tensor(10)
    return sd


def run_export(argv, capsys):
    code = export_main(argv)
    return code, capsys.readouterr()


def test_every_tensor_is_consumed():
    sd = spikereg_state_dict()
    imported = import_checkpoint(validate(sd, "test"))
    assert imported.consumed == set(sd) and len(sd) == 154
    names = [layer.name for layer in imported.spec.layers]
    assert names[:7] == ["input", "enc0", "enc1", "enc2", "enc2_short", "enc3", "enc3_short"]
    assert imported.spec.layer("dec0").inputs == ("dec0_up", "enc2", "enc2_short")
    assert imported.spec.layer("dec1").inputs == ("dec1_up", "enc1")
    assert imported.spec.required_multiple() == 16


@pytest.mark.parametrize("change, key", [
    (lambda sd: sd.pop("decoder_blocks.1.refine.neurons.v_th"), "decoder_blocks.1.refine.neurons.v_th"),
    (lambda sd: sd.__setitem__("decoder_blocks.0.attention_gate.W_g.0.weight", torch.zeros(64, 64, 1, 1, 1)),
     "decoder_blocks.0.attention_gate.W_g.0.weight"),
    (lambda sd: sd.update(spikereg_state_dict(encoder=(32, 64, 128, 256))), "encoder_blocks.0.conv.conv.weight"),
    (lambda sd: sd["bottleneck.neurons.v_th"].fill_(-1.0), "bottleneck.neurons.v_th"),
])
def test_bad_checkpoint_is_refused_naming_the_key(tmp_path, capsys, change, key):
    sd = spikereg_state_dict()
    change(sd)
    path = tmp_path / "bad.pth"
    torch.save({"model_state_dict": sd, "epoch": 1}, path)
    out = tmp_path / "m.net"
    code, captured = run_export([str(path), "--from", "spikereg", "-o", str(out)], capsys)
    assert code == 2 and not out.exists()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and repr(key) in lines[0] and str(path) in lines[0], captured.err


def test_not_a_checkpoint_is_one_line(tmp_path, capsys):
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a checkpoint")
    code, captured = run_export([str(path), "--from", "spikereg", "-o", str(tmp_path / "m.net")], capsys)
    assert code == 2 and len(captured.err.strip().splitlines()) == 1 and str(path) in captured.err


@pytest.mark.parametrize("transposed", [False, True])
def test_batchnorm_folding_is_exact(transposed):
    torch.manual_seed(3)
    conv = (torch.nn.ConvTranspose3d(4, 5, 2, stride=2) if transposed else torch.nn.Conv3d(4, 5, 3, padding=1))
    bn = torch.nn.BatchNorm3d(5, eps=BN_EPS)
    conv, bn = conv.double(), bn.double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 3)
    bn.eval()
    x = torch.rand(1, 4, 6, 6, 6, dtype=torch.float64)
    params = {"weight": conv.weight.detach().numpy(), "bias": conv.bias.detach().numpy(),
              **{f"bn_{k}": getattr(bn, k).detach().numpy() for k in ("weight", "bias", "running_mean",
                                                                       "running_var")}}
    w, b = fold_batchnorm(params, transposed)
    op = F.conv_transpose3d if transposed else F.conv3d
    kwargs = {"stride": 2} if transposed else {"padding": 1}
    folded = op(x, torch.as_tensor(w), torch.as_tensor(b), **kwargs)
    with torch.no_grad():
        np.testing.assert_allclose(folded.numpy(), bn(conv(x)).numpy(), rtol=1e-12, atol=1e-12)


def test_linear_rewrites_are_exact_in_float():
    """Residual sum -> both sources with the same weight; averaging merge -> halved weights on both; readout ->
    projection composed with the smoothing: the imported float weights give SpikeReg's currents on any input."""
    ckpt = validate(spikereg_state_dict(), "test")
    imported = import_checkpoint(ckpt)
    p, fw = ckpt.tensors, imported.float_weights
    g = torch.Generator().manual_seed(1)
    main, short = torch.rand(1, 64, 4, 4, 4, generator=g, dtype=torch.float64), torch.rand(
        1, 64, 4, 4, 4, generator=g, dtype=torch.float64)
    params = ckpt.unit_params(encoder_units(3)[0])
    w, _ = fold_batchnorm(params, False)
    want = F.conv3d(main + short, torch.as_tensor(w), stride=2, padding=1)
    got = F.conv3d(torch.cat([main, short], 1), torch.as_tensor(fw["enc3"]), stride=2, padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    up, skip = torch.rand(1, 32, 4, 4, 4, generator=g, dtype=torch.float64), torch.rand(
        1, 32, 4, 4, 4, generator=g, dtype=torch.float64)
    w1 = torch.as_tensor(p["decoder_blocks.1.refine.conv.weight"])
    gain = p["decoder_blocks.1.refine.bn.weight"] / np.sqrt(p["decoder_blocks.1.refine.bn.running_var"] + BN_EPS)
    want = F.conv3d((up + skip) / 2, w1, padding=1) * torch.as_tensor(gain).view(1, -1, 1, 1, 1)
    got = F.conv3d(torch.cat([up, skip], 1), torch.as_tensor(fw["dec1"]), padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)
    rate = torch.rand(1, 16, 5, 5, 5, generator=g, dtype=torch.float64)
    z = F.conv3d(rate, torch.as_tensor(p["output_projection.conv.weight"]))
    want = F.conv3d(z, torch.as_tensor(p["output_projection.smooth.weight"]), padding=1, groups=3)
    got = F.conv3d(rate, torch.as_tensor(fw["readout"]), padding=1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-12)


def test_imported_net_reads_back_and_runs(tmp_path, capsys, pair16):
    sd = {f"module.{k}": v for k, v in spikereg_state_dict().items()}  # as DataParallel saves it
    path = tmp_path / "final_model.pth"
    torch.save({"model_state_dict": sd, "config": {"model": {"displacement_scale": 2.0}}}, path)
    out = tmp_path / "m.net"
    code, captured = run_export([str(path), "--from", "spikereg", "-o", str(out), "--input-shape", "16", "16", "16"],
                                capsys)
    assert code == 0, captured.err
    assert "SpikeReg import" in captured.out and "encoder_blocks.0.conv" in captured.out
    loaded = read_net(out)
    imported = import_checkpoint(validate(spikereg_state_dict(), "same", {"model": {"displacement_scale": 2.0}}))
    assert loaded.spec.model_fingerprint() == imported.spec.model_fingerprint()
    for name, w in imported.weights.items():
        np.testing.assert_array_equal(loaded.weights[name], w, err_msg=name)
    run = IntegerNetwork(loaded.spec, loaded.weights).run(pair16)
    assert run.displacement.shape == (3, 16, 16, 16) and np.isfinite(run.displacement).all()
    assert sum(c.spikes for c in run.counts.values()) > 1000


def exact_enc0_state_dict() -> dict[str, torch.Tensor]:
    """enc0 on the quantization grid: weights m/64 (m even, |m| <= 126, so the power-of-two scale is 2 and the
    mantissas are 2m exactly), BN the identity, no bias, tau 0.875 (vDecay 512 exactly), v_th 1 (vThMant 128)."""
    sd = spikereg_state_dict()
    rng = np.random.default_rng(5)
    m = 2 * rng.integers(-63, 64, (16, 2, 3, 3, 3))
    m[0, 0, 0, 0, 0] = 126
    p = "encoder_blocks.0.conv"
    sd[f"{p}.conv.weight"] = torch.as_tensor(m / 64, dtype=torch.float32)
    sd[f"{p}.conv.bias"] = torch.zeros(16)
    sd[f"{p}.bn.weight"], sd[f"{p}.bn.bias"] = torch.ones(16), torch.zeros(16)
    sd[f"{p}.bn.running_mean"], sd[f"{p}.bn.running_var"] = torch.zeros(16), torch.full((16,), 1 - BN_EPS)
    sd[f"{p}.neurons.tau_u"] = torch.tensor(0.875)
    return sd


def test_exact_layer_matches_the_float_reference_within_quantization():
    """enc0 (static input, the same T = 10, no inhibition, no bias) is the one layer that maps exactly. Its integer
    current is floor(sum(w x) / 256) in mantissa units (< 1/128 of a float unit below the float current, at weight
    scale 2) and each voltage decay truncates < 1/8192: over T = 10 steps the membranes differ by less than
    10 x (1/128 + 1/8192), so a neuron may spike differently only if its float membrane came that close to the
    threshold. Tested: every neuron whose spike train differs came that close, and they are under 1 % of all."""
    ckpt = validate(exact_enc0_state_dict(), "test")
    imported = import_checkpoint(ckpt)
    enc0 = next(m for m in imported.layers if m.name == "enc0")
    assert enc0.status == "exact" and enc0.weight_scale == 2.0
    assert imported.spec.layer("enc0").neuron.v_decay == 512 and imported.spec.layer("enc0").neuron.vth_mant == 128
    image = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 16)) / 256  # on the 8-bit input grid
    ref = reference_forward(ckpt, image)
    run = IntegerNetwork(imported.spec, imported.weights).run(image, record_spikes=True)
    ours = np.stack(run.spikes["enc0"])
    theirs = ref.spikes["enc0"].numpy().astype(bool)
    assert ours.shape == theirs.shape and 0.02 < theirs.mean() < 0.6  # enough spikes to compare
    differs = (ours != theirs).any(axis=0)
    bound = 10 * (1 / 128 + 1 / 8192) + 1e-6
    assert (ref.margins["enc0"].numpy()[differs] < bound).all()
    assert differs.mean() < 0.01
    assert (ours == theirs).mean() > 0.99


@pytest.mark.lava
def test_lava_runs_the_imported_network(pair16):
    from spikereg_deploy.simulators.lava_builder import run_lava

    imported = import_checkpoint(validate(spikereg_state_dict(), "test"))
    ref = IntegerNetwork(imported.spec, imported.weights).run(pair16)
    lava = run_lava(imported.spec, imported.weights, pair16, record_spikes=False, progress=False)
    np.testing.assert_array_equal(lava.readout_sum, ref.readout_sum)
    assert {n: c.spikes for n, c in lava.counts.items()} == {n: c.spikes for n, c in ref.counts.items()}


def test_folded_biases_become_loihi_biases():
    """Every layer's folded bias (conv bias + BN shift) is its Loihi bias, round(b x s x 64) at exponent 6, noted
    as exact; the projection bias is the readout's, SpikeReg's smoothed bias exactly away from the faces."""
    ckpt = validate(spikereg_state_dict(), "test")
    imported = import_checkpoint(ckpt)
    for m in imported.layers[:-1]:
        params = ckpt.unit_params(next(u for u in _units() if u.name == m.name))
        _w, bias = fold_batchnorm(params, "up" in m.name)
        want = np.round(bias * m.weight_scale * 64).astype(np.int64)
        np.testing.assert_array_equal(imported.weights[bias_key(m.name)], want, err_msg=m.name)
        assert any(note.startswith("folded bias") and note.endswith("(exact)") for note in m.notes), m.name
        assert not m.bias_clipped
    sd = spikereg_state_dict()
    sd["output_projection.conv.bias"] = torch.tensor([0.3, -0.2, 0.1])
    imported = import_checkpoint(validate(sd, "test"))
    p, fw = {k: torch.as_tensor(v) for k, v in validate(sd, "test").tensors.items()}, imported.float_weights
    rate = torch.rand(1, 16, 6, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = F.conv3d(rate, p["output_projection.conv.weight"].double(), p["output_projection.conv.bias"].double())
    want = F.conv3d(z, p["output_projection.smooth.weight"].double(), padding=1, groups=3)[0]
    got = F.conv3d(rate, torch.as_tensor(fw["readout"]), padding=1)[0] + torch.as_tensor(
        fw[bias_key("readout")]).view(3, 1, 1, 1)
    np.testing.assert_allclose(got[:, 1:-1, 1:-1, 1:-1].numpy(), want[:, 1:-1, 1:-1, 1:-1].numpy(), atol=1e-12)
    assert not np.allclose(got[:, 0].numpy(), want[:, 0].numpy())  # a face: fewer taps in SpikeReg's smoothing
    readout = imported.layers[-1]
    assert readout.status == "nearest" and any("away from the faces" in n for n in readout.notes)


def test_a_bias_beyond_13_bits_is_clipped_and_said():
    sd = spikereg_state_dict()
    sd["bottleneck.conv.bias"] = torch.full((128,), 0.05)
    sd["bottleneck.conv.bias"][5] = 500.0
    imported = import_checkpoint(validate(sd, "test"))
    m = next(m for m in imported.layers if m.name == "bottleneck")
    assert m.bias_clipped and m.status == "nearest"
    assert any(n.startswith("1 channel(s) of the bias clipped to [-4096, 4095]") for n in m.notes)
    assert imported.weights[bias_key("bottleneck")][5] == 4095


def test_exact_layer_with_a_bias_on_the_grid():
    """enc0 with a folded bias on the mantissa grid (k / 128 at scale 2) is still exact: the same quantization
    bound holds, and running it without the bias breaks it (the bias matters, and is mapped)."""
    sd = exact_enc0_state_dict()
    k = np.random.default_rng(8).integers(-40, 41, 16)
    sd["encoder_blocks.0.conv.conv.bias"] = torch.as_tensor(k / 128, dtype=torch.float32)
    ckpt = validate(sd, "test")
    imported = import_checkpoint(ckpt)
    enc0 = next(m for m in imported.layers if m.name == "enc0")
    assert enc0.status == "exact"
    np.testing.assert_array_equal(imported.weights[bias_key("enc0")], k)
    image = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 16)) / 256
    ref = reference_forward(ckpt, image)
    theirs = ref.spikes["enc0"].numpy().astype(bool)
    bound = 10 * (1 / 128 + 1 / 8192) + 1e-6
    for with_bias in (True, False):
        weights = {n: w for n, w in imported.weights.items() if with_bias or n != bias_key("enc0")}
        ours = np.stack(IntegerNetwork(imported.spec, weights).run(image, record_spikes=True).spikes["enc0"])
        differs = (ours != theirs).any(axis=0)
        if with_bias:
            assert (ref.margins["enc0"].numpy()[differs] < bound).all() and differs.mean() < 0.01
        else:
            assert differs.mean() > 0.05


def _units():
    from spikereg_deploy.export.spikereg_model import bottleneck_unit, decoder_levels

    units = [u for level in range(4) for u in encoder_units(level)] + [bottleneck_unit()]
    return units + [u for d in decoder_levels() for u in (d.upconv, d.refine)]
