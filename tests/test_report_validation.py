"""report.json is checked field by field before any number is used; JSON outputs never hold NaN or Infinity."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from spikereg_deploy.atomic import json_text, write_json
from spikereg_deploy.cli import energy_cli, map_cli
from spikereg_deploy.energy.report import build_energy_report, load_simulation_report
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.mapping.profiles import load_profile


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    """A real small network, its .net and a real reference-engine report of it (8^3)."""
    from spikereg_deploy.export import writer
    from spikereg_deploy.simulators import simulation as sim
    from spikereg_deploy.unet import UNetConfig, build_unet_spec

    spec = build_unet_spec(UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=3))
    rng = np.random.default_rng(0)
    weights = {layer.name: 2 * rng.integers(-60, 60, size=spec.weight_shape(layer.name)) for layer in spec.layers[1:]}
    folder = tmp_path_factory.mktemp("run")
    writer.write_net(folder / "small.net", spec, weights, (8, 8, 8))
    image = rng.random((2, 8, 8, 8)).astype(np.float32)
    result = sim.simulate(spec, weights, image, engine="reference", progress=False)
    return spec, folder / "small.net", sim.build_report(result, spec, (8, 8, 8))


def _spiking_index(report: dict) -> int:
    return next(i for i, row in enumerate(report["layers"]) if row["spiking"] and row["spikes"] > 0)


def _write(tmp_path: Path, report: dict) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))  # json.dumps writes NaN tokens: what a careless tool would write
    return path


def _bad(tmp_path: Path, report: dict, change) -> Path:
    doc = copy.deepcopy(report)
    change(doc)
    return _write(tmp_path, doc)


CASES = {
    "negative spikes": (lambda d, i: d["layers"][i].update(spikes=-5), "layers[{i}].spikes", "negative"),
    "negative synops": (lambda d, i: d["layers"][i].update(synops=-1), "layers[{i}].synops", "negative"),
    "NaN synops": (lambda d, i: d["layers"][i].update(synops=float("nan")), "layers[{i}].synops", "nan"),
    "infinite total": (lambda d, i: d["totals"].update(synops=float("inf")), "totals.synops", "inf"),
    "1e30 spikes": (lambda d, i: d["layers"][i].update(spikes=1e30), "layers[{i}].spikes", "whole number"),
    "rate 1.7": (lambda d, i: d["layers"][i].update(spike_rate=1.7), "layers[{i}].spike_rate", "[0, 1]"),
    "negative total rate": (lambda d, i: d["totals"].update(spike_rate=-0.1), "totals.spike_rate", "[0, 1]"),
    "float neurons": (lambda d, i: d["layers"][i].update(neurons=4096.5), "layers[{i}].neurons", "whole number"),
    "no totals": (lambda d, i: d.pop("totals"), "totals", "is missing"),
    "spikes above neurons x T": (lambda d, i: d["layers"][i].update(spikes=d["layers"][i]["neurons"] * 3 + 1),
                                 "layers[{i}].spikes", "neurons x T"),
    "string count": (lambda d, i: d["layers"][i].update(input_macs="12"), "layers[{i}].input_macs", "whole number"),
    "negative step count": (lambda d, i: d["layers"][i]["synops_per_step"].__setitem__(0, -3),
                            "layers[{i}].synops_per_step[0]", "negative"),
    "time_steps as text": (lambda d, i: d.update(time_steps="3"), "time_steps", "positive whole number"),
    # wrong types that were AttributeError / KeyError tracebacks in spikereg-energy (issue 19, item 5)
    "network as text": (lambda d, i: d.update(network="abc"), "network", "must be an object"),
    "network as a list": (lambda d, i: d.update(network=[1]), "network", "must be an object"),
    "fingerprint as a number": (lambda d, i: d["network"].update(fingerprint=5), "network.fingerprint",
                                "fingerprint string"),
    "totals as a list": (lambda d, i: d.update(totals=[1]), "totals", "must be an object"),
    "no spike_rate": (lambda d, i: d["layers"][i].pop("spike_rate"), "layers[{i}].spike_rate", "is missing"),
    "layers as text": (lambda d, i: d.update(layers="x"), "layers", "non-empty list"),
    "layer name as a number": (lambda d, i: d["layers"][i].update(name=3), "layers[{i}].name", "layer name"),
    "version as text": (lambda d, i: d.update(version="1"), "version", "whole number"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_report_is_one_line_naming_the_file_and_the_field(case, run, tmp_path) -> None:
    _spec, _net, report = run
    change, field, problem = CASES[case]
    i = _spiking_index(report)
    path = _bad(tmp_path, report, lambda d: change(d, i))
    with pytest.raises(SpikeRegError) as err:
        load_simulation_report(path, complete=True)
    message = str(err.value)
    assert message.startswith(str(path)) and f"'{field.format(i=i)}'" in message and problem in message, message
    assert "\n" not in message


def test_the_real_report_passes_and_prices_finite(run, tmp_path) -> None:
    spec, _net, report = run
    loaded = load_simulation_report(_write(tmp_path, report), complete=True)
    energy = build_energy_report(loaded, spec, load_profile("loihi2"))
    json.loads(json_text(energy), parse_constant=lambda token: pytest.fail(f"{token} in energy.json"))


def test_spikereg_energy_refuses_a_nan_report_exit_2(run, tmp_path, capsys) -> None:
    _spec, net, report = run
    i = _spiking_index(report)
    path = _bad(tmp_path, report, lambda d: d["layers"][i].update(synops=float("nan")))
    code = energy_cli.main([str(path), "--net", str(net), "-o", str(tmp_path / "energy")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err and f"layers[{i}].synops" in err
    assert not (tmp_path / "energy").exists()


def test_time_steps_as_text_is_a_type_error_not_a_mismatch(run, tmp_path, capsys) -> None:
    """`time_steps: "3"` against a T=3 network used to read "report T=3 differs from the network's T=3"."""
    spec, net, report = run
    path = _bad(tmp_path, report, lambda d: d.update(time_steps=str(spec.time_steps)))
    code = energy_cli.main([str(path), "--net", str(net), "-o", str(tmp_path / "energy")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path}: report field 'time_steps' must be a positive whole number, got '3'" in err
    assert "differs" not in err
    assert not (tmp_path / "energy").exists()


@pytest.fixture(scope="module")
def mapping(run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real mapping.json of the small network with the report's traffic."""
    from spikereg_deploy.mapping.plan import plan_mapping, write_outputs

    spec, _net, report = run
    path = tmp_path_factory.mktemp("mapping") / "mapping.json"
    write_outputs(plan_mapping(spec, (8, 8, 8), "loihi2", traffic=report), path)
    return path


MAPPING_CASES = {
    "network as text": (lambda m: m.update(network="abc"), "network"),
    "no block table": (lambda m: m.pop("blocks"), "blocks"),
    "block rows as numbers": (lambda m: m.update(blocks=[1, 2]), "blocks"),
    "input_shape a number": (lambda m: m.update(input_shape=8), "input_shape"),
    "energy as text": (lambda m: m.update(energy="x"), "energy.counts"),
    "a count as text": (lambda m: m["energy"]["counts"].update(spike_packets="x"), "energy.counts.spike_packets.value"),
    "a negative count": (lambda m: m["energy"]["counts"]["spike_packets"].update(value=-5),
                         "energy.counts.spike_packets.value"),
    "a NaN count": (lambda m: m["energy"]["counts"]["spike_packets"].update(value=math.nan),
                    "energy.counts.spike_packets.value"),
}


@pytest.mark.parametrize("case", sorted(MAPPING_CASES))
def test_spikereg_energy_refuses_a_malformed_mapping_in_one_line(case, run, mapping, tmp_path, capsys) -> None:
    _spec, net, report = run
    change, field = MAPPING_CASES[case]
    doc = json.loads(mapping.read_text())
    change(doc)
    bad = tmp_path / "mapping.json"
    bad.write_text(json.dumps(doc))
    code = energy_cli.main([str(_write(tmp_path, report)), "--net", str(net), "--mapping", str(bad),
                            "-o", str(tmp_path / "energy")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{bad}: mapping field '{field}'" in err, err
    assert not (tmp_path / "energy").exists()


def test_the_real_mapping_is_accepted_by_spikereg_energy(run, mapping, tmp_path, capsys) -> None:
    _spec, net, report = run
    code = energy_cli.main([str(_write(tmp_path, report)), "--net", str(net), "--mapping", str(mapping),
                            "-o", str(tmp_path / "energy")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "energy" / "energy.json").is_file()


def test_spikereg_map_traffic_refuses_negative_spikes(run, tmp_path, capsys) -> None:
    _spec, net, report = run
    i = _spiking_index(report)
    path = _bad(tmp_path, report, lambda d: d["layers"][i].update(spikes=-7, spike_rate=None))
    code = map_cli.main([str(net), "--traffic", str(path), "-o", str(tmp_path / "m" / "mapping.json")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and f"layers[{i}].spikes" in err and "negative" in err, err
    assert not (tmp_path / "m" / "mapping.json").exists()


def test_the_json_writer_refuses_nan_naming_the_field(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"'layers\[1\]\.synops'"):
        json_text({"layers": [{"synops": 1}, {"synops": math.nan}]})
    with pytest.raises(ValueError, match="'total'"):
        write_json(tmp_path / "x.json", {"total": -math.inf})
    assert not list(tmp_path.iterdir())  # nothing written, not even a stage


def test_the_json_writer_writes_null_where_a_metric_is_undefined(tmp_path) -> None:
    """Dice of a label absent from a pair is NaN in Learn2Reg's convention: evaluation.json says null."""
    write_json(tmp_path / "e.json", {"dice": [0.7, math.nan], "hd95": math.inf}, null_non_finite=True)
    text = (tmp_path / "e.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"dice": [0.7, None], "hd95": None}
    assert json.loads(json_text({"a": [1, 2]}, compact=True)) == {"a": [1, 2]}
