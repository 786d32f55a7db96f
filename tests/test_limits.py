"""Limits before work: an absurd size is one line, exit 2, in well under a second, and nothing is written.

Each command runs in-process (its modules already imported by the first call, so the time measured is the tool's own
work); a tool that started tiling, building a pair or allocating arrays would take seconds to minutes and gigabytes.
"""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from spikereg_deploy.cli import evaluate_cli, export_cli, map_cli, run_cli, simulate_cli
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.export import reader  # noqa: F401  (imported by export_cli.main: not part of its time)
from spikereg_deploy.imaging.sources import open_source
from spikereg_deploy.limits import (
    DEFAULT_MAX_BYTES,
    MAPPING_BYTES_PER_BLOCK,
    check_mapping_size,
    check_pair_count,
    mapping_lower_bound_blocks,
    parse_memory,
)
from spikereg_deploy.mapping.profiles import load_profile


@pytest.fixture(scope="module")
def small_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spikereg_deploy.export import writer
    from spikereg_deploy.unet import UNetConfig, build_unet_spec

    spec = build_unet_spec(UNetConfig(encoder=(4, 8, 8), decoder=(8, 4, 4), time_steps=3))
    rng = np.random.default_rng(0)
    weights = {layer.name: 2 * rng.integers(-60, 60, size=spec.weight_shape(layer.name)) for layer in spec.layers[1:]}
    path = tmp_path_factory.mktemp("net") / "small.net"
    writer.write_net(path, spec, weights, (8, 8, 8))
    return path


def _refused_fast(main, argv: list[str], capsys: pytest.CaptureFixture[str], output: Path, *needles: str) -> str:
    started = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert elapsed < 1.0, f"took {elapsed:.2f} s: it started working before refusing"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "needs about" in err or "must be" in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not output.exists()
    return lines[0]


def test_map_refuses_a_huge_volume_from_the_tiling_arithmetic(tmp_path, capsys, small_net) -> None:
    line = _refused_fast(map_cli.main, [str(small_net), "--input-shape", "65536", "65536", "65536",
                                        "-o", str(tmp_path / "m" / "mapping.json")], capsys, tmp_path / "m",
                         "65536x65536x65536", "core blocks", "TiB")
    assert ": error: mapping at" in line


def test_map_refuses_a_tiny_fill_factor(tmp_path, capsys, small_net) -> None:
    _refused_fast(map_cli.main, [str(small_net), "--fill-factor", "1e-9", "--input-shape", "96", "96", "96",
                                 "-o", str(tmp_path / "m" / "map.json")],
                  capsys, tmp_path / "m", "fill factor 1e-09", "1 neurons per core")


def test_map_default_network_tiny_fill_factor_is_one_line(tmp_path, capsys) -> None:
    """No "no .net given" line before the refusal."""
    _refused_fast(map_cli.main, ["--fill-factor", "1e-9", "-o", str(tmp_path / "m" / "map.json")], capsys,
                  tmp_path / "m", "2,015,232 core blocks")


def test_export_refuses_a_volume_no_stage_could_use(tmp_path, capsys) -> None:
    _refused_fast(export_cli.main, ["--input-shape", "1048576", "1048576", "1048576", "-o", str(tmp_path / "x.net")],
                  capsys, tmp_path / "x.net", "even mapping this network")


@pytest.mark.parametrize("main", [simulate_cli.main, evaluate_cli.main], ids=["simulate", "evaluate"])
def test_simulate_and_evaluate_refuse_4096_cubed(main, tmp_path, capsys) -> None:
    _refused_fast(main, ["--input-shape", "4096", "4096", "4096", "-o", str(tmp_path / "o")], capsys,
                  tmp_path / "o", "4096x4096x4096", "6.0 TiB")


def test_run_refuses_a_huge_volume(tmp_path, capsys) -> None:
    _refused_fast(run_cli.main, ["--input-shape", "100000", "100000", "100000", "-o", str(tmp_path / "r")], capsys,
                  tmp_path / "r", "100000x100000x100000")


def test_evaluate_refuses_a_billion_pairs(tmp_path, capsys) -> None:
    _refused_fast(evaluate_cli.main, ["--pairs", "1000000000", "-o", str(tmp_path / "e")], capsys, tmp_path / "e",
                  "--pairs 1,000,000,000")


def test_evaluate_refuses_zero_pairs(tmp_path, capsys) -> None:
    _refused_fast(evaluate_cli.main, ["--pairs", "0", "-o", str(tmp_path / "e")], capsys, tmp_path / "e",
                  "--pairs must be at least 1")


def test_a_billion_pair_source_costs_nothing_up_front() -> None:
    """Pairs are built when asked for: the source of 10^9 pairs holds no pair."""
    tracemalloc.start()
    try:
        source = open_source("embedded", (16, 16, 16), count=1_000_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(source) == 1_000_000_000
    assert peak < 1 << 20


def test_the_pair_count_limit_is_the_rows_it_keeps() -> None:
    check_pair_count(1000, 2, (32, 32, 32))  # the benchmark's counts pass
    with pytest.raises(SpikeRegError, match="--pairs 10,000,000"):
        check_pair_count(10_000_000, 1, (32, 32, 32))


def test_the_block_bound_is_a_lower_bound_of_the_real_tiling(default_spec) -> None:
    """The estimate refuses only what cannot fit: its block count never exceeds what the tiler builds."""
    from spikereg_deploy.mapping.tiling import tile_network

    profile = load_profile("loihi2")
    for shape in ((16, 16, 16), (32, 32, 32)):
        bound = mapping_lower_bound_blocks(default_spec, shape, profile.neuron_budget)
        assert 0 < bound <= tile_network(default_spec, shape, profile).n_blocks
    # The full OASIS volume (118,592 blocks, planned in about 0.5 GB) passes; the README's result stays reachable.
    check_mapping_size(default_spec, (160, 192, 224), profile.neuron_budget, profile.fill_factor)
    assert MAPPING_BYTES_PER_BLOCK * 118_592 < DEFAULT_MAX_BYTES


def test_parse_memory_reads_the_documented_forms() -> None:
    assert parse_memory("16G") == 16 * 2**30 and parse_memory("800M") == 800 * 2**20
    with pytest.raises(SpikeRegError, match="positive"):
        parse_memory("-1G")
