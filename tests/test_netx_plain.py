"""Bring your own network: a file made by lava-dl's own `export_hdf5` runs in every tool (issue 18).

The network is tiny (1x8x8 input, T=8: conv, strided conv, flatten, dense) so the Lava runs take seconds. SynOps are
checked against an independent recount (a 2-D conv of ones over the recorded spikes, geometry taken from the SLAYER
blocks, not from the description), and the Lava run's output spikes against stock `netx.hdf5.Network` in
`Loihi2SimCfg(select_tag='fixed_pt')`.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # before Lava forks its process models (docs/hardware-facts.md, "Lava runtime")

from lava.lib.dl import netx, slayer  # noqa: E402
from stock_netx_run import run_stock_netx  # noqa: E402

from spikereg_deploy.cli import energy_cli, export_cli, map_cli, simulate_cli  # noqa: E402
from spikereg_deploy.errors import NetFormatError  # noqa: E402
from spikereg_deploy.export.netx_plain import spec_for_run  # noqa: E402
from spikereg_deploy.export.reader import read_net  # noqa: E402
from spikereg_deploy.export.writer import records_from_slayer_blocks, write_net, write_sequential_net  # noqa: E402
from spikereg_deploy.simulators.simulation import simulate  # noqa: E402
from spikereg_deploy.unet import UNetConfig, build_unet_spec  # noqa: E402

NEURON = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
T = 8
#: (in channels, out channels, kernel, stride, padding) of the two conv blocks, and the dense block's sizes.
CONVS = ((1, 4, 3, 1, 1), (4, 4, 3, 2, 1))
DENSE = (4 * 4 * 4, 6)
SYNAPTIC_LAYERS = 3  # netx delays the output by one step per synaptic layer


def _blocks() -> torch.nn.ModuleList:
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList([slayer.block.cuba.Input(None, delay_shift=False)])
    for cin, cout, k, s, p in CONVS:
        blocks.append(slayer.block.cuba.Conv(NEURON, cin, cout, k, padding=p, stride=s, weight_scale=3,
                                             delay_shift=False))
    blocks.append(slayer.block.cuba.Flatten())
    blocks.append(slayer.block.cuba.Dense(NEURON, *DENSE, weight_scale=3, delay_shift=False))
    return blocks


def _export(blocks, path: Path) -> Path:
    """lava-dl's own export, as its tutorials write it."""
    with h5py.File(path, "w") as handle:
        layer = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("plain")
    blocks = _blocks()
    spikes = (torch.rand(1, 1, 8, 8, T) > 0.6).float()
    with torch.no_grad():
        x = spikes
        for block in blocks:
            x = block(x)
    assert float(x.sum()) > 0  # the output spikes, so the comparisons below mean something
    np.save(folder / "spikes.npy", spikes[0].numpy().astype(bool))  # (C, H, W, T)
    np.save(folder / "analog.npy", np.random.default_rng(1).random((1, 8, 8)))  # (C, H, W) in [0, 1]
    ours = folder / "ours.net"
    write_sequential_net(ours, records_from_slayer_blocks(blocks))
    return {"net": _export(blocks, folder / "lavadl.net"), "ours": ours, "folder": folder,
            "spikes": spikes[0].numpy().astype(bool)}


def _one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, err
    return err


# -- the description -------------------------------------------------------------------------------------------
def test_reader_builds_the_description(plain) -> None:
    loaded = read_net(plain["net"])
    spec = loaded.spec
    assert loaded.source == "netx" and loaded.input_shape == (1, 8, 8) and spec.input_channels == 1
    assert [(layer.name, layer.kind) for layer in spec.layers] == [
        ("input", "input"), ("conv1", "conv"), ("conv2", "conv"), ("dense4", "conv")]
    assert spec.layer("conv2").kernel == (1, 3, 3) and spec.layer("conv2").stride == (1, 2, 2)
    assert spec.layer("dense4").kernel == (1, 4, 4) and not spec.has_readout  # the output is spikes
    assert spec.input_mode == "spikes" and all(e.payload == "binary" for e in spec.edges())
    with h5py.File(plain["net"], "r") as handle:
        dense = handle["layer/4/weight"][()]
        np.testing.assert_array_equal(loaded.weights["dense4"].reshape(6, -1), dense)  # (C, H, W) flatten order
    # the project's own 2-D writer makes the same network
    assert read_net(plain["ours"]).spec.model_fingerprint() == spec.model_fingerprint()


def test_check_reads_plain_files(plain, capsys) -> None:
    for path in (plain["net"], plain["ours"]):
        assert export_cli.main(["--check", str(path)]) == 0
        out = capsys.readouterr().out
        assert "conv1" in out and "dense" in out and "stock netx: can read this file" in out


def test_spikereg_3d_files_say_which_tool_reads_them(tmp_path, capsys) -> None:
    spec = build_unet_spec(UNetConfig(encoder=(4, 8), decoder=(4, 4), time_steps=2))
    rng = np.random.default_rng(0)
    weights = {layer.name: rng.integers(-64, 64, spec.weight_shape(layer.name)) * 2 for layer in spec.layers[1:]}
    path = tmp_path / "unet.net"
    write_net(path, spec, weights, (8, 8, 8))
    with h5py.File(path, "r") as handle:
        assert handle.attrs["reader"] == b"spikereg-deploy"
        assert b"not readable by stock lava-dl netx" in handle.attrs["stockNetx"]
    assert export_cli.main(["--check", str(path)]) == 0
    assert "stock netx: cannot read this file" in capsys.readouterr().out
    with pytest.raises(IndexError):  # what the attribute warns of: netx's own reader fails (lava-dl 0.6)
        netx.hdf5.Network(net_config=str(path))


# -- counts ------------------------------------------------------------------------------------------------------
def _recount(spikes_in: dict[str, np.ndarray]) -> dict[str, int]:
    """SynOps from first principles: a conv of ones over each layer's input spikes counts (spike, synapse) pairs;
    a dense layer's input spike reaches every output."""
    out = {}
    for name, (cin, cout, k, s, p) in zip(("conv1", "conv2"), CONVS, strict=True):
        frames = torch.as_tensor(spikes_in[name], dtype=torch.float64).permute(3, 0, 1, 2)  # (T, C, H, W)
        ones = torch.ones(cout, cin, k, k, dtype=torch.float64)
        out[name] = int(torch.nn.functional.conv2d(frames, ones, stride=s, padding=p).sum())
    out["dense4"] = int(spikes_in["dense4"].sum()) * DENSE[1]
    return out


def _layer_spikes(result, name: str) -> np.ndarray:
    """Recorded (C, H, W, T) or (C, T) spikes of one layer."""
    if name == "dense4":
        return result.output_spikes.reshape(DENSE[1], T)
    return np.stack(result.spikes[name], axis=-1)[:, 0]


def _check_counts(report: dict, result, spikes: np.ndarray) -> None:
    spikes_in = {"conv1": spikes, "conv2": _layer_spikes(result, "conv1"), "dense4": _layer_spikes(result, "conv2")}
    recount = _recount(spikes_in)
    assert {row["name"]: row["synops"] for row in report["layers"]} == recount
    assert {row["name"]: row["spikes"] for row in report["layers"]} == {
        name: int(_layer_spikes(result, name).sum()) for name in recount}
    assert all(v > 0 for v in recount.values())


def test_reference_synops_equal_an_independent_recount(plain, tmp_path) -> None:
    out = tmp_path / "ref"
    assert simulate_cli.main([str(plain["net"]), "--input", str(plain["folder"] / "spikes.npy"), "--engine",
                              "reference", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["output_spikes.npy", "rates.png", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["network"]["input_mode"] == "spikes" and report["time_steps"] == T and "skipped" in report
    loaded = read_net(plain["net"])
    spec = spec_for_run(loaded.spec, T, "spikes")
    result = simulate(spec, loaded.weights, plain["spikes"][:, None], engine="reference", progress=False,
                      record_spikes=True)
    _check_counts(report, result, plain["spikes"])
    np.testing.assert_array_equal(np.load(out / "output_spikes.npy"), _layer_spikes(result, "dense4"))


def test_energy_and_map_on_a_plain_network(plain, tmp_path, capsys) -> None:
    sim = tmp_path / "sim"
    assert simulate_cli.main([str(plain["net"]), "--input", str(plain["folder"] / "analog.npy"), "--time-steps",
                              "4", "--engine", "reference", "-o", str(sim)]) == 0
    report = json.loads((sim / "report.json").read_text())
    assert report["network"]["input_mode"] == "analog" and report["time_steps"] == 4
    assert report["layers"][0]["input_macs"] > 0 and report["layers"][0]["synops"] == 0  # 8-bit analog input
    assert energy_cli.main([str(sim / "report.json"), "--net", str(plain["net"]), "-o", str(tmp_path / "e")]) == 0
    energy = json.loads((tmp_path / "e" / "energy.json").read_text())
    assert energy["time_steps"] == 4 and len(energy["ratio_variants"]) >= 4
    mapping = tmp_path / "map" / "mapping.json"
    assert map_cli.main([str(plain["net"]), "--traffic", str(sim / "report.json"), "-o", str(mapping)]) == 0
    assert json.loads(mapping.read_text())["network"]["fingerprint"] == report["network"]["fingerprint"]
    # a report of another run (other T) is refused against the same file
    report["time_steps"] = 5
    (tmp_path / "bad.json").write_text(json.dumps(report))
    capsys.readouterr()
    assert energy_cli.main([str(tmp_path / "bad.json"), "--net", str(plain["net"]), "-o",
                            str(tmp_path / "e2")]) == 2
    _one_line_error(capsys, "bad.json")


# -- Lava and stock netx -------------------------------------------------------------------------------------------
def _stock_netx(path: Path, spikes: np.ndarray) -> np.ndarray:
    """Stock netx's output spikes per step (`stock_netx_run`)."""
    return run_stock_netx(path, spikes, SYNAPTIC_LAYERS).astype(bool)


@pytest.mark.lava
def test_lava_run_equals_stock_netx_and_the_recount(plain, tmp_path) -> None:
    out = tmp_path / "lava"
    assert simulate_cli.main([str(plain["net"]), "--input", str(plain["folder"] / "spikes.npy"), "-o",
                              str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == "lava" and report["lava_tag"] == "fixed_pt"
    ours = np.load(out / "output_spikes.npy")
    theirs = _stock_netx(plain["net"], plain["spikes"])
    assert ours.shape == theirs.shape == (DENSE[1], T) and ours.any()
    np.testing.assert_array_equal(ours, theirs)
    loaded = read_net(plain["net"])
    spec = spec_for_run(loaded.spec, T, "spikes")
    result = simulate(spec, loaded.weights, plain["spikes"][:, None], engine="lava", progress=False,
                      record_spikes=True)
    _check_counts(report, result, plain["spikes"])


@pytest.mark.lava
def test_analog_input_lava_equals_reference(plain, tmp_path) -> None:
    reports = {}
    for engine in ("lava", "reference"):
        assert simulate_cli.main([str(plain["net"]), "--input", str(plain["folder"] / "analog.npy"), "--time-steps",
                                  "4", "--engine", engine, "-o", str(tmp_path / engine)]) == 0
        reports[engine] = json.loads((tmp_path / engine / "report.json").read_text())
    keys = ("spikes", "synops", "input_spikes", "input_macs", "spikes_per_step")
    assert [{k: r[k] for k in keys} for r in reports["lava"]["layers"]] == \
           [{k: r[k] for k in keys} for r in reports["reference"]["layers"]]
    np.testing.assert_array_equal(np.load(tmp_path / "lava" / "output_spikes.npy"),
                                  np.load(tmp_path / "reference" / "output_spikes.npy"))


# -- bad input ------------------------------------------------------------------------------------------------------
def test_a_pool_layer_is_refused(plain, tmp_path, capsys) -> None:
    blocks = torch.nn.ModuleList([slayer.block.cuba.Input(None, delay_shift=False),
                                  slayer.block.cuba.Pool(NEURON, 2, delay_shift=False),
                                  slayer.block.cuba.Flatten(),
                                  slayer.block.cuba.Dense(NEURON, 16, 2, delay_shift=False)])
    with torch.no_grad():
        x = torch.zeros(1, 1, 8, 8, 2)
        for block in blocks:
            x = block(x)
    path = _export(blocks, tmp_path / "pool.net")
    with pytest.raises(NetFormatError, match="layer/1: layer type 'pool' cannot be run"):
        read_net(path)
    for main, argv in ((export_cli.main, ["--check", str(path)]),
                       (simulate_cli.main, [str(path), "--input", str(plain["folder"] / "spikes.npy"), "-o",
                                            str(tmp_path / "o")])):
        assert main(argv) == 2
        _one_line_error(capsys, str(path), "'pool'")


@pytest.mark.parametrize(("array", "problem"), [
    (np.zeros((1, 8, 9, T), bool), "input shape 1x8x9x8 does not fit"),
    (np.zeros((2, 8, 8, T), bool), "input shape 2x8x8x8 does not fit"),
    (np.zeros((8, 8, T), bool), "input shape 8x8x8 does not fit"),
    (np.full((1, 8, 8, T), 2, np.int64), "holds only 0 and 1"),
    (np.full((1, 8, 8), 1.5), "float values in [0, 1]"),
    (np.ones((1, 8, 8), np.int64), "float values in [0, 1]"),
    (np.array([["a"] * 8] * 8)[None], "is not numeric"),
    (np.zeros((1, 8, 8), complex), "is not numeric"),
])
def test_bad_input_arrays_are_one_line(plain, tmp_path, capsys, array, problem) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    assert simulate_cli.main([str(plain["net"]), "--input", str(path), "--engine", "reference", "-o",
                              str(tmp_path / "o")]) == 2
    _one_line_error(capsys, str(path), problem)
    assert not (tmp_path / "o").exists()


def test_plain_file_without_input_and_registration_options(plain, tmp_path, capsys) -> None:
    assert simulate_cli.main([str(plain["net"]), "-o", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, str(plain["net"]), "--input ARRAY.npy")
    assert simulate_cli.main([str(plain["net"]), "--input", str(plain["folder"] / "spikes.npy"), "--fixed", "f",
                              "-o", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "--fixed")
    assert simulate_cli.main([str(plain["net"]), "--input", str(plain["folder"] / "spikes.npy"), "--time-steps",
                              "5", "-o", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "T=8")
