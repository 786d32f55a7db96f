"""Tiled runs (`simulators/tiled.py`): slabs partition the volume, the fewest that fit are chosen, stitching and
count sums are exact, and a tiled Lava run is bit-exact to the tiled reference run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.simulators import simulation as sim
from spikereg_deploy.simulators import tiled


def test_slabs_partition_the_longest_axis_on_the_network_multiple():
    axis, slabs, halo = tiled.plan_slabs((16, 48, 16), 3, 8, halo=5)
    assert axis == 1 and halo == 8  # the halo rounds up to the multiple: slab borders stay on the pooling grid
    assert [(s.core_start, s.core_stop) for s in slabs] == [(0, 16), (16, 32), (32, 48)]
    assert [(s.start, s.stop) for s in slabs] == [(0, 24), (8, 40), (24, 48)]  # clipped at the faces
    with pytest.raises(SpikeRegError, match="1 to 2 tiles"):
        tiled.plan_slabs((16, 16, 16), 3, 8)


def test_auto_takes_the_fewest_tiles_that_fit(small_spec):
    shape = (16, 16, 64)
    two = tiled.plan_tiles(small_spec, shape, "lava", 1 << 60, 2)
    plan = tiled.plan_tiles(small_spec, shape, "lava", two.bytes_per_slab, "auto")
    assert len(plan.slabs) == 2 and plan.bytes_per_slab <= two.bytes_per_slab
    assert sim.estimate_memory(small_spec, shape, "lava") > two.bytes_per_slab  # the whole would not have fitted
    with pytest.raises(SpikeRegError, match="exceeds --max-memory"):
        tiled.plan_tiles(small_spec, shape, "lava", 1 << 20, "auto")


def test_a_halo_covering_the_volume_stitches_the_whole_run_exactly(tiny_skip_net):
    spec, weights, rng = tiny_skip_net
    image = rng.random((1, 8, 8, 16)).astype(np.float32)
    whole = IntegerNetwork(spec, weights).run(image)
    plan = tiled.plan_tiles(spec, (8, 8, 16), "reference", 1 << 40, 2, halo=16)
    assert all((s.start, s.stop) == (0, 16) for s in plan.slabs)  # each slab is the whole volume
    run = tiled.simulate_tiled(spec, weights, image, plan, engine="reference", progress=False)
    np.testing.assert_array_equal(run.displacement, whole.displacement)
    for name, counts in whole.counts.items():
        assert run.counts[name].spikes == 2 * counts.spikes and run.counts[name].synops == 2 * counts.synops
        assert run.counts[name].neurons == 2 * counts.neurons
        assert run.counts[name].spikes_per_step == [2 * n for n in counts.spikes_per_step]


@pytest.mark.lava
def test_tiled_lava_is_bit_exact_to_tiled_reference(tiny_skip_net):
    spec, weights, rng = tiny_skip_net
    image = rng.random((1, 8, 8, 16)).astype(np.float32)
    plan = tiled.plan_tiles(spec, (8, 8, 16), "lava", 1 << 40, 2, halo=2)
    assert [(s.start, s.stop) for s in plan.slabs] == [(0, 10), (6, 16)]
    runs = {engine: tiled.simulate_tiled(spec, weights, image, plan, engine=engine, progress=False)
            for engine in ("reference", "lava")}
    np.testing.assert_array_equal(runs["lava"].displacement, runs["reference"].displacement)
    for name, counts in runs["reference"].counts.items():
        assert runs["lava"].counts[name].to_dict() == counts.to_dict()


def test_simulate_tiles_auto_writes_a_stitched_field_and_says_so(tmp_path, small_net, capsys):
    import nibabel as nib

    from spikereg_deploy.cli import simulate_cli

    shape = (16, 16, 48)
    rng = np.random.default_rng(3)
    paths = []
    for name in ("f", "m"):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32), np.eye(4)), str(path))
        paths.append(str(path))
    from spikereg_deploy.cli.common import load_network

    spec = load_network(str(small_net)).spec
    limit = tiled.plan_tiles(spec, shape, "reference", 1 << 60, 2).bytes_per_slab
    out = tmp_path / "out"
    argv = [str(small_net), "--fixed", paths[0], "--moving", paths[1], "-o", str(out), "--engine", "reference",
            "--max-memory", str(limit)]
    assert simulate_cli.main(argv) == 2 and "exceeds --max-memory" in capsys.readouterr().err
    assert simulate_cli.main([*argv, "--tiles", "auto"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["tiling"]["tiles"] == 2 and report["tiling"]["axis"] == 2
    assert nib.load(str(out / "displacement.nii.gz")).shape == (*shape, 1, 3)
    assert "per tile (2 tiles)" in capsys.readouterr().err
