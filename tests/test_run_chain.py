"""`spikereg-run`, the README's main job, end to end on a small volume: every stage's files and a summary whose
numbers agree with the files they come from."""
from __future__ import annotations

import json

import pytest

from spikereg_deploy.cli import run_cli
from spikereg_deploy.energy.loihi import format_uj


@pytest.mark.lava
@pytest.mark.slow
def test_whole_chain_small_volume(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli.main(["-o", str(out), "--input-shape", "16", "16", "16"]) == 0
    for name in ("model.net", "summary.json", "simulation/report.json", "simulation/rates.png",
                 "simulation/displacement.nii.gz", "mapping/mapping.json", "energy/energy.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    report = json.loads((out / "simulation" / "report.json").read_text())
    assert report["engine"] == "lava"
    text = capsys.readouterr().out
    assert "Dice before / after registration" in text and "measured" in text and "projected" in text
    total_synops, total_graded = report["totals"]["synops"], report["totals"]["graded_synops"]
    assert total_synops == sum(layer["synops"] for layer in report["layers"])
    assert total_graded == sum(layer["graded_synops"] for layer in report["layers"])
    assert total_synops + total_graded > 0  # the graded default's events are graded, a binary model's SynOps
    # the summary prints the measured counts, not recomputed ones
    assert str(f"{total_synops:,}") in text and (not total_graded or f"{total_graded:,}" in text)
    assert summary["evaluation"]["dice_before"] > 0
    # one Loihi energy figure, labelled projected with its cost model, the same in both reports
    energy = json.loads((out / "energy" / "energy.json").read_text())["loihi"]
    mapping = json.loads((out / "mapping" / "mapping.json").read_text())["energy"]
    assert summary["loihi_energy"]["total_uJ"] == energy["total_uJ"] == mapping["total_uJ"]
    assert text.count("uJ per inference") == 1
    assert f"{format_uj(energy['total_uJ'])} uJ per inference (projected, cost model loihi_per_op" in text
