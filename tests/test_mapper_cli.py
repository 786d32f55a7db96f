"""spikereg-map's profiles, command line and traffic reports: bad input exits 2 and leaves nothing; real .net
files and simulation reports feed the mapper unchanged."""
from __future__ import annotations

import itertools
import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_mapper import fake_report

from spikereg_deploy.cli import map_cli
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.mapping.plan import read_traffic_report
from spikereg_deploy.mapping.profiles import PROFILE_DIR, load_profile
from spikereg_deploy.mapping.report import read_mapping
from spikereg_deploy.mapping.tiling import tile_network
from spikereg_deploy.mapping.traffic import LayerRates


def edited_profile(tmp_path: Path, old: str, new: str) -> Path:
    text = (PROFILE_DIR / "loihi2.toml").read_text()
    assert old in text
    path = tmp_path / "custom.toml"
    path.write_text(text.replace(old, new))
    return path


def test_unknown_profile_name():
    with pytest.raises(SpikeRegError, match="unknown profile 'loihi9'"):
        load_profile("loihi9")


def test_profile_missing_field_names_file_and_field(tmp_path):
    path = edited_profile(tmp_path, "synaptic_memory_bits = {", "# synaptic_memory_bits = {")
    with pytest.raises(SpikeRegError, match="missing field core.synaptic_memory_bits") as err:
        load_profile(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_profile_non_positive_limit(tmp_path):
    path = edited_profile(tmp_path, "input_axons = { value = 32768", "input_axons = { value = 0")
    with pytest.raises(SpikeRegError, match="core.input_axons must be positive") as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_layer_that_fits_no_core_says_which_limit_and_by_how_much(default_spec):
    profile = load_profile("loihi2").replace_limits(synaptic_memory_bits=20_000)
    with pytest.raises(SpikeRegError) as err:
        tile_network(default_spec, (16, 16, 16), profile)
    message = str(err.value)
    # dec1 (tiled before the bottleneck: consumers first): one output channel's lists are, per input channel,
    # 2^3 = 8 synapses of 8 weight + 12 index bits (+ 2 delay bits on the enc2 skip) + 10 header bits = 170
    # (186) bits -> 3 words = 192 bits; x (64 + 64) input channels = 24,576 bits, 4,576 over.
    assert "'dec1'" in message and "synaptic memory" in message and "24,576" in message and "4,576 over" in message


def test_layer_that_fits_no_core_by_input_axons(default_spec):
    profile = load_profile("loihi1").replace_limits(input_axons=3000)
    with pytest.raises(SpikeRegError, match=r"'bottleneck'.*3,456 input axons, 456 over"):
        tile_network(
            default_spec, (32, 32, 32), profile
        )  # 4^3 bottleneck: an inner voxel sees 3^3 x 128 inputs


@pytest.mark.parametrize("change", ["fingerprint", "layers", "shape"])
def test_traffic_report_from_another_network(default_spec, small_spec, change):
    shape = (16, 16, 16)
    report = fake_report(default_spec, shape, {layer.name: 0.1 for layer in default_spec.layers})
    if change == "fingerprint":
        report["network"]["fingerprint"] = small_spec.architecture_fingerprint()
        match = "another network"
    elif change == "layers":
        report["layers"] = report["layers"][:-1]
        match = "do not match"
    else:
        report["input_shape"] = [32, 32, 32]
        match = "measured at input"
    with pytest.raises(SpikeRegError, match=match):
        read_traffic_report(report, default_spec, shape)


def run_cli(args: list[str], tmp_path: Path, capsys) -> tuple[int, str]:
    code = map_cli.main(args + ["-o", str(tmp_path / "out" / "mapping.json")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", ["profile-name", "profile-field", "profile-limit", "no-fit", "traffic"])
def test_cli_bad_input_exits_2_and_leaves_nothing(case, tmp_path, capsys, default_spec, small_spec):
    args = ["--config-default", "--input-shape", "16", "16", "16"]
    if case == "profile-name":
        args += ["--profile", "loihi9"]
    elif case == "profile-field":
        args += ["--profile", str(edited_profile(tmp_path, "input_axons = {", "# input_axons = {"))]
    elif case == "profile-limit":
        args += ["--profile", str(edited_profile(tmp_path, "value = 4096,", "value = -1,"))]
    elif case == "no-fit":
        args += ["--profile", str(edited_profile(tmp_path, "value = 1048576", "value = 20000"))]
    else:
        report = fake_report(small_spec, (16, 16, 16), {})
        (tmp_path / "report.json").write_text(json.dumps(report))
        args += ["--traffic", str(tmp_path / "report.json")]
    code, err = run_cli(args, tmp_path, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_cli_default_network_and_measured_traffic(tmp_path, capsys, default_spec):
    shape = (16, 16, 16)
    rates = {layer.name: 0.08 for layer in default_spec.layers if layer.spiking}
    (tmp_path / "report.json").write_text(json.dumps(fake_report(default_spec, shape, rates)))
    code = map_cli.main(["--traffic", str(tmp_path / "report.json"), "-o", str(tmp_path / "mapping.json")])
    err = capsys.readouterr().err
    assert code == 0 and "no .net given" in err and "16x16x16" in err
    doc = read_mapping(tmp_path / "mapping.json")
    assert doc["traffic"]["label"] == "measured" and doc["input_shape"] == [16, 16, 16]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mapping.json",
        "mapping_cores.png",
        "mapping_report.md",
        "report.json",
    ]


def test_cli_reads_net_through_the_export_reader(tmp_path, capsys, monkeypatch, small_spec):
    reader = types.ModuleType("spikereg_deploy.export.reader")
    reader.read_net = lambda path: types.SimpleNamespace(spec=small_spec, input_shape=(8, 8, 8))  # type: ignore
    monkeypatch.setitem(sys.modules, "spikereg_deploy.export.reader", reader)
    code = map_cli.main(["model.net", "--profile", "loihi1", "-o", str(tmp_path / "m.json")])
    assert code == 0
    doc = read_mapping(tmp_path / "m.json")
    assert doc["network"]["fingerprint"] == small_spec.architecture_fingerprint() and doc["input_shape"] == [8, 8, 8]
    assert (tmp_path / "m_report.md").exists() and (tmp_path / "m_cores.png").exists()


def test_assumed_rate_must_be_a_rate(default_spec):
    tiling = tile_network(default_spec, (16, 16, 16), load_profile("loihi2"))
    with pytest.raises(SpikeRegError, match="assumed spike rate"):
        LayerRates.assumed(tiling, 1.5)
    assert list(itertools.islice(LayerRates.assumed(tiling).rates, 1)) == ["enc0"]
    assert replace(load_profile("loihi1"), name="x").neurons == 1024


def test_projected_synops_use_exact_fanout(small_spec):
    from spikereg_deploy.counting import projected_synops
    from spikereg_deploy.fanout import fanout_map

    geo = small_spec.geometry((8, 8, 12))
    for edge in small_spec.edges():
        if edge.payload == "analog":
            continue
        layer, g = small_spec.layer(edge.dst), geo[edge.dst]
        exact = edge.channels * int(fanout_map(layer, g.in_shape, g.out_shape).sum())
        assert projected_synops(small_spec, geo, edge, 0.25, 4) == exact  # 0.25 x 4 steps = one spike each


def test_real_net_file_and_simulation_report(tmp_path, capsys, small_spec):
    """The .net writer/reader and the simulator's report (reference engine) feed the mapper unchanged."""
    from spikereg_deploy.export import writer
    from spikereg_deploy.simulators import simulation as sim

    rng = np.random.default_rng(0)
    weights = {
        layer.name: 2 * rng.integers(-60, 60, size=small_spec.weight_shape(layer.name))
        for layer in small_spec.layers[1:]
    }
    writer.write_net(tmp_path / "small.net", small_spec, weights, (8, 8, 8))
    image = rng.random((2, 8, 8, 8)).astype(np.float32)
    result = sim.simulate(small_spec, weights, image, engine="reference", progress=False)
    (tmp_path / "report.json").write_text(json.dumps(sim.build_report(result, small_spec, (8, 8, 8))))
    out = tmp_path / "mapping.json"
    code = map_cli.main(
        [str(tmp_path / "small.net"), "--traffic", str(tmp_path / "report.json"), "-o", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    doc = read_mapping(out)
    assert doc["traffic"]["label"] == "measured" and doc["input_shape"] == [8, 8, 8]
    assert doc["energy"]["counts"]["synaptic_ops"]["how"].startswith("measured")
    assert doc["traffic"]["rates"]["enc0"] == pytest.approx(result.counts["enc0"].spikes / (8**3 * 4 * 3))
