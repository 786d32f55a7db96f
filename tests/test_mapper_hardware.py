"""The mapper as the hardware sees it: axon models, synaptic memory with headers/index/delay bits, both lower
bounds, host I/O, and the profile's new fields refused one line at a time (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.mapping.plan import plan_mapping
from spikereg_deploy.mapping.profiles import PROFILE_DIR, SynapseEncoding, load_profile
from spikereg_deploy.mapping.report import mapping_document, render_markdown
from spikereg_deploy.mapping.tiling import RESOURCES, tile_network
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec

NEURON = NeuronSpec.from_float(1.0, 0.25, 0.03)
BARE = SynapseEncoding(index_bits=0, group_header_bits=0, synapses_per_group=64, word_bits=1, max_delay_bits=6)


def pointwise_chain() -> NetworkSpec:
    """input (2 ch) -> a (4) -> b (4) -> readout (1), all 1x1x1 kernels: a tile's receptive field is the tile."""
    return NetworkSpec(
        layers=(
            LayerSpec("input", "input", 2, kernel=1, padding=0),
            LayerSpec("a", "conv", 4, inputs=("input",), kernel=1, padding=0, neuron=NEURON),
            LayerSpec("b", "conv", 4, inputs=("a",), kernel=1, padding=0, neuron=NEURON),
            LayerSpec("readout", "readout", 1, inputs=("b",), kernel=1, padding=0),
        ),
        time_steps=2,
    )


def hand_profile(axon_model: str, memory_bits: int = 10**9):
    """128 input and 200 output axons per core; neurons never bind; 8-bit weights without overheads."""
    return load_profile("loihi2").replace_limits(
        neurons=100_000, fill_factor=1.0, synaptic_memory_bits=memory_bits, input_axons=128, output_axons=200,
        bits_per_weight=8.0, synapse_encoding=BARE, axon_model=axon_model,
    )


def test_core_counts_worked_out_by_hand_under_both_axon_models():
    """On 4^3 (64 voxels).
    per_channel: readout needs 4 ch x vol <= 128 input axons -> vol 32 -> 2 cores; b the same (and its
      4 x vol output axons fit 200 at vol 32) -> 2; a: 2 x 64 = 128 input axons fit, but 4 ch x 64 voxels x 1
      destination core = 256 output axons > 200 -> 2 cores. Total 6.
    population: one axon per source pixel: every layer has 64 input and 64 output axons -> 1 core each. Total 3.
    """
    spec = pointwise_chain()
    per_channel = tile_network(spec, (4, 4, 4), hand_profile("per_channel"))
    population = tile_network(spec, (4, 4, 4), hand_profile("population"))
    assert [t.n_blocks for t in per_channel.layers] == [2, 2, 2]
    assert [t.n_blocks for t in population.layers] == [1, 1, 1]
    assert per_channel.n_blocks == 6 and population.n_blocks == 3
    # The bounds by hand: per_channel a: ceil(256 out / 200) = 2; b: ceil(256 in / 128) = 2; readout: 2.
    assert [t.lower_bound for t in per_channel.layers] == [2, 2, 2]
    assert population.lower_bound == 3


def test_population_axons_follow_the_source_channel_groups():
    """Synaptic memory of 40 bits (8-bit weights, k = 1): a (Cin 2) holds 2 output channels per core -> 2
    groups; b (Cin 4) 1 channel -> 4 groups; readout (Cin 4, 1 channel) fits.
    population: a pixel of a reaches b's 4 groups -> 4 output axons per pixel -> vol <= 50 -> 2 x 2 = 4 cores;
      b: 2 source groups x 64 = 128 input axons fit -> 4 x 1 = 4; readout: 4 source groups x vol <= 128 ->
      vol 32 -> 2. Total 10 (found on the second pass: the first assumes one group per source).
    per_channel: readout 2; b: 4 ch x vol <= 128 -> vol 32 -> 4 groups x 2 = 8; a: 2 ch x vol x 4 destination
      cores <= 200 -> vol <= 25: one grid over 4^3 needs 4 spatial parts (16 each), but a cut into the box
      z 0-3 (48 voxels = 2 tiles of 3 x 4 x 2 = 24) and the slab z 3-4 (16 voxels, 1 tile) needs 3 -> 3 x 2
      groups = 6 (tile_search.py). Total 16.
    """
    spec = pointwise_chain()
    population = tile_network(spec, (4, 4, 4), hand_profile("population", memory_bits=40))
    assert [t.grid[0] for t in population.layers] == [2, 4, 1]
    assert [t.n_blocks for t in population.layers] == [4, 4, 2]
    assert (population.layer("readout").resources["input_axons"] == 4 * 32).all()
    assert (population.layer("b").resources["input_axons"] == 2 * 64).all()
    per_channel = tile_network(spec, (4, 4, 4), hand_profile("per_channel", memory_bits=40))
    assert [t.n_blocks for t in per_channel.layers] == [6, 8, 2]
    a = per_channel.layer("a")
    assert [seg.grid for seg in a.segments] == [(2, 1, 1, 2), (2, 1, 1, 1)]
    assert [seg.axis_bounds[0].tolist() for seg in a.segments] == [[0, 3], [3, 4]]
    assert a.resources["output_axons"].max() == 2 * 24 * 4  # 192 <= 200


@pytest.mark.parametrize("axon_model", ["per_channel", "population"])
@pytest.mark.parametrize("profile_name", ["loihi2", "loihi1"])
def test_every_block_within_every_limit_under_both_axon_models(default_spec, profile_name, axon_model):
    profile = load_profile(profile_name).replace_limits(axon_model=axon_model)
    tiling = tile_network(default_spec, (32, 32, 32), profile)
    limits = profile.limits()
    for r in RESOURCES:
        assert (tiling.resource(r) <= limits[r]).all(), r
    assert (tiling.resource("neurons") <= profile.neuron_budget).all()
    assert tiling.lower_bound <= tiling.fill_lower_bound <= tiling.n_blocks


def test_synaptic_memory_of_one_block_by_hand(tiny_skip_net):
    """readout of the tiny skip net on loihi2: 3 output channels, 3x3x3 kernel -> lists of 27 x 3 = 81 synapses,
    one per input channel: groups of 64 + 17.
    from c (2 ch, no delay): 8 weight + 12 index = 20 bits: 64 x 20 + 10 header = 1,290 -> 21 words = 1,344;
      17 x 20 + 10 = 350 -> 6 words = 384; per channel 1,728, for 2 channels 3,456.
    from a (3 ch, the skip's 2-step delay: 2 delay bits): 22 bits: 64 x 22 + 10 = 1,418 -> 23 words = 1,472;
      17 x 22 + 10 = 384 -> 6 words = 384; per channel 1,856, for 3 channels 5,568.
    Total 9,024 bits (the old 9 bits per weight gave 27 x 5 x 3 x 9 = 3,645)."""
    spec, _, _ = tiny_skip_net
    assert [e.delay for e in spec.edges_into("readout")] == [0, 2]
    readout = tile_network(spec, (6, 6, 6), load_profile("loihi2")).layer("readout")
    assert readout.n_blocks == 1
    assert int(readout.resources["synaptic_memory_bits"][0]) == 9024


def test_unshared_synaptic_memory_matches_a_loop_over_source_neurons():
    """No weight sharing: one list per source neuron with its synapses into the block (brute force)."""
    spec = NetworkSpec(
        layers=(
            LayerSpec("input", "input", 1, kernel=1, padding=0),
            LayerSpec("a", "conv", 2, inputs=("input",), neuron=NEURON),
            LayerSpec("readout", "readout", 3, inputs=("a",)),
        ),
        time_steps=2,
    )
    profile = load_profile("loihi2").replace_limits(shared_weights=False, synaptic_memory_bits=150_000)
    shape = (5, 4, 6)
    tiling = tile_network(spec, shape, profile)
    readout = tiling.layer("readout")
    assert readout.n_blocks > 1
    enc = profile.synapse_encoding
    for b, (c0, c1, z0, z1, y0, y1, x0, x1) in enumerate(readout.block_ranges()):
        expected = 0
        for src in np.ndindex(*shape):  # a's pixels; 2 channels each, same list length
            taps = 1
            for axis, (lo, hi) in enumerate(((z0, z1), (y0, y1), (x0, x1))):
                taps *= sum(1 for o in range(lo, hi) if abs(o - src[axis]) <= 1)
            if taps:
                expected += 2 * int(enc.list_bits(taps * (c1 - c0), 8 + 12))
        assert readout.resources["synaptic_memory_bits"][b] == expected


def test_lower_bounds_state_their_fill(default_spec):
    profile = load_profile("loihi2")
    tiling = tile_network(default_spec, (32, 32, 32), profile)
    for lt in tiling.layers:
        others = [-(-lt.layer_totals[r] // profile.limits()[r]) for r in RESOURCES if r != "neurons"]
        assert lt.lower_bound == max(1, -(-lt.layer_totals["neurons"] // 4096), *others)
        assert lt.fill_lower_bound == max(1, -(-lt.layer_totals["neurons"] // 3584), *others)
    assert tiling.fill_lower_bound > tiling.lower_bound


@pytest.mark.parametrize("axon_model", ["per_channel", "population"])
def test_host_io_in_the_plan_and_the_energy_estimate(small_spec, axon_model):
    """Input injection = the analog input's values x destination cores (input channels x receptive field of
    each enc0 core), whatever the axon model; readout output = the readout's values, every step."""
    profile = load_profile("loihi1").replace_limits(axon_model=axon_model)
    shape = (16, 16, 16)
    plan = plan_mapping(small_spec, shape, profile)
    enc0 = plan.tiling.layer("enc0")
    geo = small_spec.geometry(shape)
    expected_in = 0
    for _c0, _c1, z0, z1, y0, y1, x0, x1 in enc0.block_ranges():  # 3x3x3, padding 1: tile plus halo, clipped
        expected_in += 2 * (min(z1 + 1, 16) - max(z0 - 1, 0)) * (min(y1 + 1, 16) - max(y0 - 1, 0)) * (
            min(x1 + 1, 16) - max(x0 - 1, 0))
    assert enc0.n_blocks > 1 and plan.graph.host_inputs == expected_in
    assert plan.graph.host_outputs == geo["readout"].neurons
    doc = mapping_document(plan)
    assert doc["host_io_per_step"] == {"input_injection": expected_in, "readout_output": geo["readout"].neurons}
    t = small_spec.time_steps
    counts = plan.energy["counts"]
    assert counts["host_input_packets"]["value"] == expected_in * t
    assert counts["host_output_values"]["value"] == geo["readout"].neurons * t
    assert any(item.startswith("host I/O (input injection") for item in plan.energy["not_costed"])
    text = render_markdown(doc)
    assert "input injection" in text and "at the fill target" in text and f"axon model {axon_model}" in text


def edited(tmp_path, old: str, new: str):
    text = (PROFILE_DIR / "loihi2.toml").read_text()
    assert old in text
    path = tmp_path / "edited.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_unknown_axon_model_is_one_line_naming_file_and_field(tmp_path):
    path = edited(tmp_path, 'axon_model = { value = "per_channel"', 'axon_model = { value = "dendritic"')
    with pytest.raises(SpikeRegError) as err:
        load_profile(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "core.axon_model" in message
    assert "per_channel, population" in message


@pytest.mark.parametrize("field", ["group_header_bits", "index_bits", "word_bits", "synapses_per_group"])
def test_missing_overhead_field_is_one_line_naming_file_and_field(tmp_path, field):
    path = edited(tmp_path, f"\n{field} = {{", f"\n# {field} = {{")
    with pytest.raises(SpikeRegError) as err:
        load_profile(path)
    assert str(err.value) == f"{path}: missing field synapse.{field}"


def test_delay_longer_than_the_delay_field_is_refused(tiny_skip_net):
    spec, _, _ = tiny_skip_net
    profile = load_profile("loihi2").replace_limits(
        synapse_encoding=SynapseEncoding(12, 10, 64, 64, max_delay_bits=1)
    )
    with pytest.raises(SpikeRegError, match="delay of 2 steps needs 2 delay bits"):
        tile_network(spec, (6, 6, 6), profile)
