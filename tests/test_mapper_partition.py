"""Chip partitioners behind one interface: deterministic per seed, within chip capacity, the choice made by placed
spike-hops, and a missing optional partitioner skipped with a note."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.mapping.partition import (
    AUTO_ALL_BLOCKS,
    AUTO_LARGE,
    AUTO_SMALL,
    RUNNERS,
    available,
    build_problem,
    place_best,
)
from spikereg_deploy.mapping.plan import plan_mapping
from spikereg_deploy.mapping.profiles import load_profile
from spikereg_deploy.mapping.routing import evaluate
from spikereg_deploy.mapping.tiling import tile_network
from spikereg_deploy.mapping.traffic import LayerRates, build_block_graph


@pytest.fixture(scope="module")
def problem_setup(small_spec):
    profile = load_profile("loihi1").replace_limits(usable_cores=16)  # small chips: about 7 of them
    tiling = tile_network(small_spec, (16, 16, 16), profile)
    graph = build_block_graph(tiling, LayerRates.assumed(tiling))
    assert tiling.n_blocks > 5 * profile.usable_cores  # several chips to partition
    return tiling, graph, profile


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_same_graph_same_seed_same_partition(problem_setup, name):
    tiling, graph, profile = problem_setup
    if not available(name):
        pytest.skip(f"optional partitioner {name} is not installed here (the fallback is tested below)")
    problem = build_problem(graph, profile)
    first, again = RUNNERS[name](problem, 3), RUNNERS[name](problem, 3)
    assert np.array_equal(first, again)
    assert first.min() >= 0 and first.max() < problem.n_parts


def test_choice_is_the_fewest_placed_spike_hops(problem_setup):
    tiling, graph, profile = problem_setup
    placement, choice = place_best(tiling, graph, profile, ("metis", "metis_rb", "metis_tuned"), seeds=2, seed=0)
    assert len(choice.candidates) == 6
    hops = [c["spike_hops_per_step"] for c in choice.candidates]
    best = choice.candidates[int(np.argmin(hops))]  # argmin: the first of equal ones, as the rule says
    assert (choice.chosen, choice.seed) == (best["partitioner"], best["seed"])
    assert evaluate(placement, graph, profile)["spike_hops_per_step"] == pytest.approx(min(hops))
    assert np.bincount(placement.chip).max() <= profile.usable_cores
    again, choice2 = place_best(tiling, graph, profile, ("metis", "metis_rb", "metis_tuned"), seeds=2, seed=0)
    assert np.array_equal(again.chip, placement.chip) and np.array_equal(again.slot, placement.slot)
    assert [c["spike_hops_per_step"] for c in choice2.candidates] == hops


def test_missing_optional_partitioner_falls_back_with_a_note(problem_setup, monkeypatch):
    tiling, graph, profile = problem_setup
    monkeypatch.setitem(sys.modules, "mtkahypar", None)  # importing it now raises ImportError
    monkeypatch.setitem(sys.modules, "kahip", None)
    assert not available("mtkahypar") and not available("kahip")
    _, choice = place_best(tiling, graph, profile, ("mtkahypar", "kahip"))
    assert choice.chosen == "metis"
    assert any(n.startswith("mtkahypar not installed") for n in choice.notes)
    assert any(n.startswith("kahip not installed") for n in choice.notes)
    assert "no requested partitioner available: fell back to metis" in choice.notes
    _, mixed = place_best(tiling, graph, profile, ("mtkahypar", "metis_rb"))
    assert mixed.chosen == "metis_rb" and [c["partitioner"] for c in mixed.candidates] == ["metis_rb"]


def test_unknown_partitioner_and_bad_seed_count(problem_setup):
    tiling, graph, profile = problem_setup
    with pytest.raises(SpikeRegError, match="unknown partitioner scotch"):
        place_best(tiling, graph, profile, ("scotch",))
    with pytest.raises(SpikeRegError, match="seeds must be at least 1"):
        place_best(tiling, graph, profile, ("metis",), seeds=0)


def test_plan_records_the_partitioning(small_spec):
    profile = load_profile("loihi1").replace_limits(usable_cores=16)
    plan = plan_mapping(small_spec, (16, 16, 16), profile, partitioners=("metis", "metis_tuned"))
    from spikereg_deploy.mapping.report import mapping_document, render_markdown

    doc = mapping_document(plan)
    assert doc["partitioning"]["chosen"] in ("metis", "metis_tuned")
    assert len(doc["partitioning"]["candidates"]) == 2
    assert "Chips partitioned by **" in render_markdown(doc)


def test_auto_tries_every_partitioner_on_small_graphs_and_keeps_the_fewest_hops(problem_setup, monkeypatch):
    """The default: all five (those installed) up to AUTO_ALL_BLOCKS blocks, metis_rb alone above; the same
    graph gets the same candidates and the same plan."""
    tiling, graph, profile = problem_setup
    placement, choice = place_best(tiling, graph, profile)
    tried = [c["partitioner"] for c in choice.candidates]
    assert tried == [p for p in AUTO_SMALL if available(p)]
    assert choice.notes[0].startswith("auto: metis, metis_rb, metis_tuned, mtkahypar, kahip")
    hops = [c["spike_hops_per_step"] for c in choice.candidates]
    assert choice.chosen == tried[int(np.argmin(hops))]
    again, _ = place_best(tiling, graph, profile)
    assert np.array_equal(again.chip, placement.chip) and np.array_equal(again.slot, placement.slot)
    monkeypatch.setattr("spikereg_deploy.mapping.partition.AUTO_ALL_BLOCKS", graph.n_blocks - 1)
    _, large = place_best(tiling, graph, profile)
    assert [c["partitioner"] for c in large.candidates] == list(AUTO_LARGE) and AUTO_ALL_BLOCKS > graph.n_blocks
