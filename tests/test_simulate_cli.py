"""spikereg-simulate end to end: outputs, report schema, and one-line refusals of bad input."""
from __future__ import annotations

import json

import h5py
import nibabel as nib
import numpy as np
import pytest

from spikereg_deploy.cli import simulate_cli


def _nifti(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)), str(path))
    return str(path)


def _pair(tmp_path, shape=(16, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    base = np.zeros(shape, np.float32)
    base[3:-3, 3:-3, 3:-3] = 1.0
    fixed = base + 0.05 * rng.random(shape)
    moving = np.roll(base, 1, axis=0) + 0.05 * rng.random(shape)
    return _nifti(tmp_path / "f.nii.gz", fixed), _nifti(tmp_path / "m.nii.gz", moving)


@pytest.mark.lava
def test_lava_run_with_files(tmp_path, small_net, capsys):
    f, m = _pair(tmp_path)
    out = tmp_path / "out"
    assert simulate_cli.main([str(small_net), "--fixed", f, "--moving", m, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["displacement.nii.gz", "rates.png", "report.json",
                                                     "warped.nii.gz"]
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == "lava" and report["lava_tag"] == "fixed_pt" and report["input_shape"] == [16] * 3
    assert report["run_steps"] == report["time_steps"] + report["pipeline_depth"]
    layer = report["layers"][1]
    assert set(layer) >= {"name", "neurons", "spikes", "spike_rate", "input_spikes", "synops", "neuron_updates"}
    disp = nib.load(str(out / "displacement.nii.gz"))
    assert disp.shape == (16, 16, 16, 1, 3) and disp.header.get_intent()[0] == "vector"  # world mm, 5-D
    assert "SynOps" in capsys.readouterr().out


@pytest.mark.lava
def test_reference_engine_same_counts_as_lava(tmp_path, small_net):
    f, m = _pair(tmp_path)
    reports = {}
    for engine in ("lava", "reference"):
        out = tmp_path / engine
        assert simulate_cli.main([str(small_net), "--fixed", f, "--moving", m, "-o", str(out), "--engine",
                                  engine]) == 0
        reports[engine] = json.loads((out / "report.json").read_text())
    for a, b in zip(reports["lava"]["layers"], reports["reference"]["layers"], strict=True):
        assert {k: a[k] for k in ("spikes", "synops", "input_spikes", "input_macs")} == \
               {k: b[k] for k in ("spikes", "synops", "input_spikes", "input_macs")}
    d_lava = nib.load(str(tmp_path / "lava" / "displacement.nii.gz")).get_fdata()
    d_ref = nib.load(str(tmp_path / "reference" / "displacement.nii.gz")).get_fdata()
    np.testing.assert_array_equal(d_lava, d_ref)


def _fails(capsys, argv, *needles):
    code = simulate_cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    last = err[-1]
    for needle in needles:
        assert needle in last, last
    return last


def test_bad_inputs(tmp_path, small_net, capsys):
    out = tmp_path / "out"
    f, m = _pair(tmp_path)
    odd_f, odd_m = _nifti(tmp_path / "of.nii.gz", np.ones((15, 16, 16))), _nifti(tmp_path / "om.nii.gz",
                                                                               np.ones((15, 16, 16)))
    _fails(capsys, [str(small_net), "--fixed", odd_f, "--moving", odd_m, "-o", str(out), "--engine", "reference"],
           "of.nii.gz", "does not suit")
    _fails(capsys, [str(small_net), "--fixed", f, "--moving", m, "-o", str(out), "--input-shape", "10", "16", "16"],
           "does not suit")
    four_d = _nifti(tmp_path / "4d.nii.gz", np.ones((16, 16, 16, 2)))
    _fails(capsys, [str(small_net), "--fixed", four_d, "--moving", m, "-o", str(out)], "4d.nii.gz")
    two_d = _nifti(tmp_path / "2d.nii.gz", np.ones((16, 16)))
    _fails(capsys, [str(small_net), "--fixed", two_d, "--moving", m, "-o", str(out)], "2d.nii.gz")
    other = _nifti(tmp_path / "other.nii.gz", np.ones((16, 16, 8)))
    _fails(capsys, [str(small_net), "--fixed", f, "--moving", other, "-o", str(out)], "other.nii.gz")
    nan = np.ones((16, 16, 16))
    nan[2, 2, 2] = np.nan
    nan_path = _nifti(tmp_path / "nan.nii.gz", nan)
    _fails(capsys, [str(small_net), "--fixed", f, "--moving", nan_path, "-o", str(out)], "nan.nii.gz")
    newer = tmp_path / "newer.net"
    newer.write_bytes(small_net.read_bytes())
    with h5py.File(newer, "r+") as h:
        del h["spikereg/formatVersion"]
        h["spikereg/formatVersion"] = 99
    _fails(capsys, [str(newer), "--fixed", f, "--moving", m, "-o", str(out)], "newer.net", "newer")
    _fails(capsys, [str(small_net), "--fixed", f, "--moving", m, "-o", str(out), "--max-memory", "10M"],
           "exceeds --max-memory")
    assert not out.exists()  # nothing half-written


def test_default_pair_reference(tmp_path):
    out = tmp_path / "d"
    assert simulate_cli.main(["-o", str(out), "--engine", "reference", "--input-shape", "16", "16", "16"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["pair"].startswith("embedded pair") and report["totals"]["spikes"] > 0
