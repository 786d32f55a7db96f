"""The two fingerprints in `.net` files and reports, and the guards that use each: a report counted on a model with
other thresholds or T cannot be costed or mapped as traffic against this one; a mapping without traffic needs only
the architecture; `.net` files written before the model fingerprint existed still load."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import pytest

from spikereg_deploy.cli import map_cli
from spikereg_deploy.energy.report import check_report_matches
from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.export.reader import read_net
from spikereg_deploy.export.writer import write_net
from spikereg_deploy.mapping.plan import read_traffic_report
from spikereg_deploy.simulators.simulation import build_report, simulate
from spikereg_deploy.training.snn import seeded_model
from spikereg_deploy.unet import UNetConfig, build_unet_spec

SHAPE = (8, 8, 8)


def test_default_architecture_fingerprint_is_unchanged():
    """The architecture hash is the one `.net` files and reports have always carried (old files keep loading)."""
    assert build_unet_spec(UNetConfig()).architecture_fingerprint() == "e0586b2562bb3d88"


@pytest.fixture
def model(small_config):
    return seeded_model(small_config, seed=3)


@pytest.fixture
def report(model, pair16):
    result = simulate(model.spec, model.integer_weights(), pair16[:, :8, :8, :8], engine="reference",
                      progress=False)
    return build_report(result, model.spec, SHAPE)


@pytest.fixture
def net(tmp_path: Path, model) -> Path:
    path = tmp_path / "m.net"
    write_net(path, model.spec, model.integer_weights(), SHAPE)
    return path


def _other(small_config, **changes):
    return build_unet_spec(replace(small_config, **changes))


def test_report_carries_both_fingerprints(report, model):
    assert report["network"]["fingerprint"] == model.spec.architecture_fingerprint()
    assert report["network"]["model_fingerprint"] == model.spec.model_fingerprint()


@pytest.mark.parametrize("changes", [{"threshold": 1.7}, {"time_steps": 4}, {"readout_gain": 0.5}])
def test_energy_refuses_a_report_of_another_model(report, small_config, changes):
    with pytest.raises(SpikeRegError, match="another model of this network") as info:
        check_report_matches(report, _other(small_config, **changes), "r.json")
    assert "\n" not in str(info.value)


def test_energy_refuses_a_report_without_model_fingerprint(report, model):
    del report["network"]["model_fingerprint"]
    with pytest.raises(SpikeRegError, match="no model_fingerprint"):
        check_report_matches(report, model.spec, "r.json")
    check_report_matches({**report, "network": {**report["network"], "model_fingerprint":
                                                model.spec.model_fingerprint()}}, model.spec, "r.json")


def test_traffic_from_another_model_is_refused(report, small_config, model):
    read_traffic_report(report, model.spec, SHAPE)  # its own model: accepted
    with pytest.raises(SpikeRegError, match="another model of this network"):
        read_traffic_report(report, _other(small_config, threshold=1.7), SHAPE)


def test_map_cli_traffic_needs_the_model_mapping_only_the_architecture(tmp_path, capsys, report, model,
                                                                       small_config):
    other = _other(small_config, threshold=1.7)
    write_net(tmp_path / "other.net", other, model.integer_weights(), SHAPE)
    (tmp_path / "report.json").write_text(json.dumps(report))
    code = map_cli.main([str(tmp_path / "other.net"), "--traffic", str(tmp_path / "report.json"), "-o",
                         str(tmp_path / "a" / "mapping.json")])
    err = capsys.readouterr().err
    assert code == 2 and "another model of this network" in err
    assert map_cli.main([str(tmp_path / "other.net"), "-o", str(tmp_path / "b" / "mapping.json")]) == 0


def test_net_holds_both_and_reader_checks_the_model_one(net: Path, model):
    with h5py.File(net, "r") as f:
        assert f["spikereg/fingerprint"][()].decode() == model.spec.architecture_fingerprint()
        assert f["spikereg/modelFingerprint"][()].decode() == model.spec.model_fingerprint()
    with h5py.File(net, "r+") as f:  # a threshold edited by hand: the architecture hash cannot see it
        value = int(f["layer/1/neuron/vThMant"][()])
        del f["layer/1/neuron/vThMant"]
        f.create_dataset("layer/1/neuron/vThMant", data=value + 2)
    with pytest.raises(NetFormatError, match="modelFingerprint .* does not match") as info:
        read_net(net)
    assert net.name in str(info.value) and "\n" not in str(info.value)


def test_net_without_model_fingerprint_still_loads(net: Path, model):
    with h5py.File(net, "r+") as f:
        del f["spikereg/modelFingerprint"]
    assert read_net(net).spec == model.spec
