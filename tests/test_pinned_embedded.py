"""The embedded default model's counts, displacement and energy table, pinned across refactors.

The hashes were first taken from the tools' own outputs before the code was reorganised into packages (neuron
registry, counting module, mapping and energy packages), then re-taken when the default became the QCFS T = 8 model
(configs/snn_qcfs8.toml) and again when it became the graded T = 1 model (configs/snn_qcfs8_mt.toml, CUBA-MT: its
events are graded, so the pin covers graded events and payload sums); any change to what the model computes or
counts shows up here. The
analog input's MACs are checked separately against an independent count of real taps (a conv of ones), since they
used to include padded taps that have no synapse.
"""
from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikereg_deploy.cli import energy_cli, export_cli, simulate_cli
from spikereg_deploy.imaging.native import mm_to_voxels

COUNT_KEYS = ("name", "neurons", "spikes", "spikes_per_step", "input_spikes", "synops", "synops_per_step",
              "neuron_updates", "graded_synops", "graded_synops_per_step", "payload_sum")
COUNTS_SHA256 = "a4a932dd35bfd7dec412ecc9a8c1bc9a27ab3594dbbc56b29dff610cf632537b"
DISPLACEMENT_SHA256 = "695950f8cd75c2d317ba046e7fc96222c443fe7810b6e1a79492ad63f8e24e52"
ENERGY_ROWS_SHA256 = "15c847368392171a0755cc0711d5829c95a574d9321291817e52c5ab22c49fe8"


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pinned")
    shape = ["16", "16", "16"]
    assert export_cli.main(["-o", str(out / "m.net"), "--input-shape", *shape]) == 0
    assert simulate_cli.main([str(out / "m.net"), "-o", str(out / "sim"), "--engine", "reference",
                              "--input-shape", *shape]) == 0
    assert energy_cli.main([str(out / "sim" / "report.json"), "--net", str(out / "m.net"), "-o",
                            str(out / "energy")]) == 0
    return out


@pytest.mark.slow
def test_counts_displacement_and_energy_table_unchanged(embedded_run):
    report = json.loads((embedded_run / "sim" / "report.json").read_text())
    assert _sha([{k: row[k] for k in COUNT_KEYS} for row in report["layers"]]) == COUNTS_SHA256
    field = nib.load(str(embedded_run / "sim" / "displacement.nii.gz"))  # world mm since issue 16; the pin is of
    disp = np.moveaxis(mm_to_voxels(np.asarray(field.dataobj), field.affine), 0, -1).astype(np.float32)  # voxels
    assert hashlib.sha256(np.ascontiguousarray(disp, dtype=np.float64).tobytes()).hexdigest() == DISPLACEMENT_SHA256
    energy = json.loads((embedded_run / "energy" / "energy.json").read_text())
    rows = [{k: v for k, v in row.items() if k != "analog_macs"} for row in energy["layers"]]
    assert _sha(rows) == ENERGY_ROWS_SHA256


@pytest.mark.slow
def test_analog_macs_count_real_taps_only(embedded_run):
    """enc0 (3x3x3, padding 1) on 16^3: a conv of ones counts the taps that land inside the volume."""
    report = json.loads((embedded_run / "sim" / "report.json").read_text())
    enc0 = next(row for row in report["layers"] if row["input_macs"])
    taps_per_channel_pair = int(F.conv3d(torch.ones(1, 1, 16, 16, 16, dtype=torch.float64),
                                         torch.ones(1, 1, 3, 3, 3, dtype=torch.float64), padding=1).sum())
    cin, cout = 2, enc0["neurons"] // 16 ** 3
    once = 1 if report["network"]["input_mode"] == "bias" else report["time_steps"]  # input as bias: MACs once
    assert report["network"]["input_mode"] == "bias"  # the default since the frontier (README)
    assert enc0["input_macs"] == taps_per_channel_pair * cin * cout * once
