"""Energy accounting: exact hand-computed figures, three counters agreeing, ratio formulas by hand."""
from __future__ import annotations

import numpy as np
import pytest

from spikereg_deploy.energy.ratios import ratio_variants
from spikereg_deploy.energy.report import build_energy_report, check_report_matches
from spikereg_deploy.energy.table import E_AC_45NM, E_MAC_45NM, layer_rows, proxy_energy
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.mapping.profiles import load_profile
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.simulators.simulation import build_report, simulate
from spikereg_deploy.training.event_hooks import count_events
from spikereg_deploy.training.snn import seeded_model

T = 2
LOIHI = load_profile("loihi2")


def _hand_net():
    """input (1 ch, 4^3) -> 'a' (1x1x1 conv, fires every step where the input is 1) -> readout (3 ch, k3 p1)."""
    neuron = NeuronSpec(i_decay=4096, v_decay=4096, vth_mant=64)
    spec = NetworkSpec(layers=(
        LayerSpec("input", "input", 1, kernel=1, padding=0),
        LayerSpec("a", "conv", 1, inputs=("input",), kernel=1, padding=0, neuron=neuron),
        LayerSpec("readout", "readout", 3, inputs=("a",), kernel=3, padding=1),
    ), time_steps=T, input_channels=1)
    weights = {"a": np.full((1, 1, 1, 1, 1), 254), "readout": np.full((3, 1, 3, 3, 3), 2)}
    image = np.zeros((1, 4, 4, 4), dtype=np.float32)
    image[0, 0, 0, 0] = 1.0  # a corner: 2 x 2 x 2 readout positions reached per channel
    image[0, 1, 1, 1] = 1.0  # interior: 3 x 3 x 3
    return spec, weights, image


@pytest.mark.parametrize("engine", ["reference", pytest.param("lava", marks=pytest.mark.lava)])
def test_hand_computed_table_is_exact(engine):
    spec, weights, image = _hand_net()
    result = simulate(spec, weights, image, engine=engine, progress=False)
    report = build_report(result, spec, (4, 4, 4))
    rows = {r.name: r for r in layer_rows(report, spec)}
    a, ro = rows["a"], rows["readout"]
    # layer a: analog input -> MACs, not SynOps; 2 voxels spike at both steps
    assert (a.neurons, a.ann_macs, a.spikes, a.synops_measured, a.analog_macs) == (64, 64, 4, 0, 64 * T)
    assert a.input_rate is None and a.output_rate == 4 / (64 * T)
    # readout: fan-out 3 x 8 (corner) + 3 x 27 (interior) per step
    assert (ro.input_spikes, ro.synops_measured, ro.ann_macs) == (4, (24 + 81) * T, 64 * 3 * 27)
    assert ro.input_rate == 4 / (64 * T)
    assert ro.synops_projected == pytest.approx((4 / 128) * 5184 * T)
    assert ro.measured_over_projected == pytest.approx(210 / 324)
    proxy = proxy_energy(list(rows.values()))
    assert proxy["ann_energy_pJ"] == pytest.approx((64 + 5184) * 4.6)
    assert proxy["snn_energy_pJ"] == pytest.approx(210 * 0.9 + 128 * 4.6)
    variants = {v["name"]: v for v in ratio_variants(list(rows.values()), T)}
    k = 4.6 / 0.9
    assert variants["spikereg_public_formula"]["ratio"] == pytest.approx(k / (T * (4 / 128)))
    assert variants["mac_weighted_rates"]["ratio"] == pytest.approx(k / (T * (4 / 128)))
    assert variants["measured_synops"]["ratio"] == pytest.approx(5248 * 4.6 / (210 * 0.9 + 128 * 4.6))
    assert variants["measured_synops_spiking_layers_only"]["ratio"] == pytest.approx(5184 * 4.6 / (210 * 0.9))
    loihi = build_energy_report(report, spec, LOIHI)["loihi"]
    parts = {name: term["pJ"] for name, term in loihi["energy"].items()}
    assert parts["synaptic_ops"] == pytest.approx((210 + 128) * 23.6)
    # active: the 4 spikes of 'a' and every readout update (192 compartments x T); inactive: the rest of 'a'
    assert parts["neuron_updates_active"] == pytest.approx((4 + 192 * T) * 81.0)
    assert parts["neuron_updates_inactive"] == pytest.approx((64 * T - 4) * 52.0)
    assert parts["spikes_within_tile"] == pytest.approx(4 * 1.7)  # no mapping: one packet per spike
    assert "hops_east_west" not in parts and any("no mapping" in item for item in loihi["not_costed"])
    assert loihi["total_pJ"] == pytest.approx(sum(parts.values()))
    assert loihi["cost_model"] == "loihi_per_op"


def test_rate_weighting_differs_when_layers_differ():
    class Row:
        def __init__(self, macs, rin, rout):
            self.ann_macs, self.input_rate, self.output_rate = macs, rin, rout
            self.synops_measured, self.graded_synops_measured, self.analog_macs = 0, 0, 0
            self.graded_input_bits = None
    rows = [Row(1000, None, 0.5), Row(100, 0.5, 0.1), Row(10_000, 0.1, 0.2)]
    rows[1].synops_measured, rows[2].synops_measured = 10, 10
    v = {x["name"]: x for x in ratio_variants(rows, 4)}
    mean_rate = (0.5 + 0.1 + 0.2) / 3
    weighted = (0.5 * 100 + 0.1 * 10_000) / 10_100
    assert v["spikereg_public_formula"]["ratio"] == pytest.approx(E_MAC_45NM.value / (4 * mean_rate * E_AC_45NM.value))
    assert v["mac_weighted_rates"]["ratio"] == pytest.approx(E_MAC_45NM.value / (4 * weighted * E_AC_45NM.value))


@pytest.mark.lava
def test_three_counters_agree(small_config, pair16):
    """Lava run, reference engine and torch hooks give identical SynOps, spikes and MACs per layer."""
    model = seeded_model(small_config, seed=4)
    image = pair16[:, :8, :8, :8]
    lava = simulate(model.spec, model.integer_weights(), image, engine="lava", progress=False).counts
    ref = IntegerNetwork(model.spec, model.integer_weights()).run(image).counts
    hooks = count_events(model, image)
    for name in ref:
        key = lambda c: (c.spikes, c.input_spikes, c.synops, c.input_macs, c.neuron_updates)  # noqa: E731
        assert key(lava[name]) == key(ref[name]) == key(hooks[name]), name
        assert lava[name].synops_per_step == ref[name].synops_per_step == hooks[name].synops_per_step
    assert sum(c.synops for c in ref.values()) > 0


def test_report_from_other_network_refused(small_config, pair16):
    model = seeded_model(small_config)
    report = build_report(simulate(model.spec, model.integer_weights(), pair16[:, :8, :8, :8], engine="reference",
                                   progress=False), model.spec, (8, 8, 8))
    other = seeded_model().spec
    with pytest.raises(SpikeRegError, match="another network"):
        check_report_matches(report, other, "r.json")


def test_graded_events_are_priced_by_payload_width_never_as_adds():
    """45 nm proxy: a 4-bit graded event = 8-bit multiply + add (1.1 pJ), a 16-bit one = 32-bit multiply + add
    (4.0 pJ), both 4.6 pJ under the fp32 bound; binary SynOps stay adds (0.9 pJ)."""
    from spikereg_deploy.energy.table import LayerEnergyRow, proxy_energy

    def row(name, synops, graded, bits, macs):
        return LayerEnergyRow(name, "conv", 10, macs, 0, None, None, synops, graded, 4, bits, None, None, 0, 0, 0)

    rows = [row("a", 100, 0, None, 1000), row("b", 0, 10, 4, 1000), row("c", 0, 20, 16, 1000)]
    proxy = proxy_energy(rows)
    assert proxy["snn_energy_pJ"] == pytest.approx(100 * 0.9 + 10 * 1.1 + 20 * 4.0)
    assert proxy["ratio_ann_over_snn"] == pytest.approx(3000 * 4.6 / (90 + 11 + 80))
    fp32 = proxy["graded_event_cost_models"]["fp32_mac"]["snn_energy_pJ"]
    assert fp32 == pytest.approx(100 * 0.9 + 30 * 4.6)
    assert proxy["ratio_fp32_graded_bound"] == pytest.approx(3000 * 4.6 / fp32)
    assert proxy["event_cost_model"] == "int_mac" and proxy["snn_graded_synops_measured"] == 30
