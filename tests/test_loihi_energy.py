"""One Loihi per-operation model: the energy report and the mapping report of one run price the same counts the same
way and give the same total."""
from __future__ import annotations

import json

import pytest

from spikereg_deploy.cli import energy_cli, map_cli
from spikereg_deploy.energy.loihi import COST_MODEL, OperationCount, counts_from_report, format_uj, loihi_energy
from spikereg_deploy.energy.report import build_energy_report
from spikereg_deploy.export.export_model import export_model
from spikereg_deploy.mapping.plan import plan_mapping
from spikereg_deploy.mapping.profiles import load_profile
from spikereg_deploy.simulators.simulation import build_report, simulate
from spikereg_deploy.training.snn import seeded_model

SHAPE = (8, 8, 8)


@pytest.fixture
def one_run(tmp_path, small_config, pair16):
    """A .net and its reference-engine report, as files (what spikereg-export and spikereg-simulate write)."""
    model = seeded_model(small_config, seed=3)
    loaded = export_model(model.spec, model.integer_weights(), SHAPE, tmp_path / "small.net", "seeded")
    result = simulate(loaded.spec, loaded.weights, pair16[:, :8, :8, :8], engine="reference", progress=False)
    report = build_report(result, loaded.spec, SHAPE)
    (tmp_path / "report.json").write_text(json.dumps(report))
    return tmp_path, loaded.spec, report


def test_energy_report_and_mapping_report_give_one_loihi_total(one_run, capsys):
    folder, _, _ = one_run
    net, report = str(folder / "small.net"), str(folder / "report.json")
    assert map_cli.main([net, "--traffic", report, "-o", str(folder / "mapping" / "mapping.json")]) == 0
    assert energy_cli.main([report, "--net", net, "--mapping", str(folder / "mapping" / "mapping.json"),
                            "-o", str(folder / "energy")]) == 0
    printed = capsys.readouterr().out
    mapping = json.loads((folder / "mapping" / "mapping.json").read_text())["energy"]
    loihi = json.loads((folder / "energy" / "energy.json").read_text())["loihi"]
    assert mapping["cost_model"] == loihi["cost_model"] == COST_MODEL
    assert loihi["total_uJ"] == pytest.approx(mapping["total_uJ"], rel=1e-12) and loihi["total_uJ"] > 0
    assert {k: v["count"] for k, v in loihi["energy"].items()} == pytest.approx(
        {k: v["count"] for k, v in mapping["energy"].items()}, rel=1e-12)
    assert "hops_east_west" in loihi["energy"]  # the mapping's hops are priced in both
    # both tools print the same figure, labelled projected with its cost model
    figure = f"{format_uj(loihi['total_uJ'])} uJ per inference (projected, cost model {COST_MODEL}"
    assert printed.count(figure) == 2, printed


def test_mapping_with_measured_traffic_prices_the_reports_own_counts(one_run):
    """The mapping's synaptic and compartment counts are the report's, from the same function the energy uses."""
    _, spec, report = one_run
    profile = load_profile("loihi1")
    plan = plan_mapping(spec, SHAPE, profile, traffic=report)
    measured = counts_from_report(report, spec)
    for key in ("synaptic_ops", "input_graded_ops", "neuron_updates", "active_neuron_updates"):
        assert plan.energy["counts"][key] == measured[key].to_dict(), key
    assert plan.energy["profile"] == "loihi1"


def test_without_a_mapping_each_spike_is_one_packet_and_hops_are_not_costed(one_run):
    _, spec, report = one_run
    profile = load_profile("loihi2")
    loihi = build_energy_report(report, spec, profile)["loihi"]
    spikes = sum(row["spikes"] for row in report["layers"] if row["spiking"])
    assert loihi["energy"]["spikes_within_tile"]["count"] == spikes > 0
    assert set(loihi["energy"]) == {"synaptic_ops", "neuron_updates_active", "neuron_updates_inactive",
                                    "spikes_within_tile"}
    assert loihi["total_pJ"] == pytest.approx(sum(v["pJ"] for v in loihi["energy"].values()))


def test_missing_energy_key_is_listed_not_guessed():
    profile = load_profile("loihi2")  # has no chip_hop_pj
    counts = {name: OperationCount(10.0, "events", "measured") for name in (
        "synaptic_ops", "input_graded_ops", "neuron_updates", "active_neuron_updates", "spike_packets",
        "router_hops_east_west", "router_hops_north_south", "chip_link_crossings")}
    loihi = loihi_energy(counts, profile, time_steps=4, pipeline_depth=2)
    assert "chip_links" not in loihi["energy"]
    assert any(item.startswith("chip_links (chip_hop_pj not in profile") for item in loihi["not_costed"])
    assert loihi["energy"]["synaptic_ops"]["count"] == 20.0  # binary SynOps + graded input ops
    assert loihi["energy"]["neuron_updates_inactive"]["count"] == 0.0
