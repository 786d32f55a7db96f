"""A sequential 2-D sigma-delta network made of lava-dl's own `slayer.block.sigma_delta` blocks and exported with
lava-dl's `export_hdf5` runs in the project's reference engine and Lava payload for payload as in stock netx
(`lava.lib.dl.netx.hdf5.Network`, fixed_pt); the project's own writer makes the same file, which stock netx runs
identically.

The input layer is a plain `input` (shape only, the block without a neuron): netx's sigma-delta input layer (a
`Delta` neuron) is not read by the plain reader. T = 12 binary input frames; a binary spike is the value 1/4096
in SDNN's units, so the first threshold is the smallest mantissa.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # before Lava forks its process models (docs/hardware-facts.md, "Lava runtime")

from lava.lib.dl import slayer  # noqa: E402
from stock_netx_run import run_stock_netx  # noqa: E402

from spikereg_deploy.cli import export_cli  # noqa: E402
from spikereg_deploy.export.netx_plain import spec_for_run, stock_netx_verdict  # noqa: E402
from spikereg_deploy.export.reader import read_net  # noqa: E402
from spikereg_deploy.export.writer import records_from_slayer_blocks, write_sequential_net  # noqa: E402
from spikereg_deploy.neurons import SigmaDeltaNeuron  # noqa: E402
from spikereg_deploy.simulators.simulation import simulate  # noqa: E402

T = 12
SYNAPTIC_LAYERS = 3  # netx delays the output by one step per synaptic layer
FIRST = {"threshold": 1 / 64, "activation": torch.relu}
LATER = {"threshold": 2 / 64, "activation": torch.relu}


def _blocks() -> torch.nn.ModuleList:
    torch.manual_seed(1)
    blocks = torch.nn.ModuleList([
        slayer.block.cuba.Input(None, delay_shift=False),  # shape only: no neuron
        slayer.block.sigma_delta.Conv(FIRST, 1, 4, 3, padding=1, stride=1, weight_scale=4),
        slayer.block.sigma_delta.Conv(LATER, 4, 4, 3, padding=1, stride=2, weight_scale=4),
        slayer.block.sigma_delta.Flatten(),
        slayer.block.sigma_delta.Dense(LATER, 4 * 4 * 4, 6, weight_scale=4),
    ])
    with torch.no_grad():  # larger weights (8-bit clamped on export), the first layer excitatory: events everywhere
        blocks[1].synapse.weight.abs_().mul_(3)
        blocks[2].synapse.weight.mul_(3)
        blocks[4].synapse.weight.mul_(3)
    return blocks


@pytest.fixture(scope="module")
def sdnn(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("sdnn")
    blocks = _blocks()
    spikes = (torch.rand(1, 1, 8, 8, T, generator=torch.Generator().manual_seed(2)) > 0.3).float()
    with torch.no_grad():
        x = spikes
        for block in blocks:
            x = block(x)
    theirs = folder / "lavadl.net"
    with h5py.File(theirs, "w") as handle:  # lava-dl's own export, as its tutorials write it
        layer = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    ours = folder / "ours.net"
    write_sequential_net(ours, records_from_slayer_blocks(blocks))
    return {"theirs": theirs, "ours": ours, "spikes": spikes[0].numpy().astype(bool)}


def _stock_netx(path: Path, spikes: np.ndarray) -> np.ndarray:
    """Stock netx's output payloads per step (`stock_netx_run`)."""
    return run_stock_netx(path, spikes, SYNAPTIC_LAYERS)


def _ours(path: Path, spikes: np.ndarray, engine: str) -> np.ndarray:
    loaded = read_net(path)
    spec = spec_for_run(loaded.spec, T, "spikes")
    result = simulate(spec, loaded.weights, spikes[:, None], engine=engine, progress=False)
    return np.asarray(result.output_spikes).reshape(6, T).astype(np.int64)


def test_reader_takes_lava_dls_sdnn_fields(sdnn) -> None:
    loaded = read_net(sdnn["theirs"])
    neurons = [layer.neuron for layer in loaded.spec.layers[1:]]
    assert neurons == [SigmaDeltaNeuron(1), SigmaDeltaNeuron(2), SigmaDeltaNeuron(2)]  # messageBits: 16
    assert [edge.payload for edge in loaded.spec.edges()] == ["binary", "graded", "graded"]
    assert "stock netx: can read this file" in stock_netx_verdict(loaded)
    assert read_net(sdnn["ours"]).spec.model_fingerprint() == loaded.spec.model_fingerprint()
    with h5py.File(sdnn["ours"], "r") as handle:  # the project writes lava-dl's fields, no more
        assert sorted(handle["layer/1/neuron"].keys()) == ["activation", "type", "vThMant"]
    assert export_cli.main(["--check", str(sdnn["theirs"])]) == 0


@pytest.mark.lava
def test_reference_and_lava_equal_stock_netx_payload_for_payload(sdnn) -> None:
    theirs = _stock_netx(sdnn["theirs"], sdnn["spikes"])
    assert (theirs != 0).sum() > 10 and (theirs < 0).any() and np.abs(theirs).max() > 255  # signed, wide
    np.testing.assert_array_equal(_ours(sdnn["theirs"], sdnn["spikes"], "reference"), theirs)
    np.testing.assert_array_equal(_ours(sdnn["theirs"], sdnn["spikes"], "lava"), theirs)
    # the file the project writes runs identically in stock netx
    np.testing.assert_array_equal(_stock_netx(sdnn["ours"], sdnn["spikes"]), theirs)


def test_simulate_cli_writes_the_payloads(sdnn, tmp_path) -> None:
    """spikereg-simulate on the lava-dl file: output_spikes.npy holds the signed payloads, the report counts events."""
    import json

    from spikereg_deploy.cli import simulate_cli

    np.save(tmp_path / "spikes.npy", sdnn["spikes"])
    out = tmp_path / "out"
    assert simulate_cli.main([str(sdnn["theirs"]), "--input", str(tmp_path / "spikes.npy"), "--engine", "reference",
                              "-o", str(out)]) == 0
    payloads = np.load(out / "output_spikes.npy")
    np.testing.assert_array_equal(payloads, _ours(sdnn["theirs"], sdnn["spikes"], "reference"))
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"]["output_spikes.npy"]["dtype"] == "int64" and (payloads < 0).any()
    assert report["output_spikes"]["count"] == int((payloads != 0).sum()) == report["layers"][-1]["spikes"]
    assert report["layers"][-1]["payload_sum"] == int(np.abs(payloads).sum())
