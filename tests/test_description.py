"""What the network description carries for every stage: payloads, weight layout and split, delays by destination,
the refusal of a layer that mixes analog and spiking inputs, and the two fingerprints."""
from __future__ import annotations

import numpy as np
import pytest

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.network import ANALOG_INPUT_BITS, LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.unet import UNetConfig, build_unet_spec

NEURON = NeuronSpec(i_decay=1024, v_decay=128, vth_mant=40)


def test_analog_input_bits_are_the_quantizers():
    from spikereg_deploy import fixed_point as fx

    assert ANALOG_INPUT_BITS == fx.INPUT_BITS and fx.INPUT_MAX == (1 << ANALOG_INPUT_BITS) - 1


def test_edge_payload_read_from_the_source():
    spec = build_unet_spec(UNetConfig())
    payloads = {(e.src, e.dst): (e.payload, e.payload_bits) for e in spec.edges()}
    assert payloads.pop(("input", "enc0")) == ("analog", 8)
    assert set(payloads.values()) == {("binary", 1)} and len(payloads) == len(spec.edges()) - 1
    assert NEURON.payload_bits == 1


def test_weight_shapes_per_layer_kind():
    spec = build_unet_spec(UNetConfig())
    assert spec.weight_shape("enc0") == (16, 2, 3, 3, 3)  # conv: (Cout, Cin, k...)
    assert spec.weight_shape("dec1") == (128, 32, 2, 2, 2)  # convT on [dec0, enc2]: (Cin, Cout, k...)
    assert spec.weight_shape("dec3") == (16, 32, 3, 3, 3)  # conv on [dec2, enc0]
    assert spec.weight_shape("readout") == (3, 16, 3, 3, 3)
    with pytest.raises(SpikeRegError, match="no weight"):
        spec.weight_shape("input")


def test_edge_weight_split_shapes_and_order():
    spec = build_unet_spec(UNetConfig())
    for name, axis in (("dec1", 0), ("dec3", 1)):
        weight = np.arange(np.prod(spec.weight_shape(name))).reshape(spec.weight_shape(name))
        parts = [weight[spec.edge_weight_slice(e)] for e in spec.edges_into(name)]
        assert [p.shape[axis] for p in parts] == [e.channels for e in spec.edges_into(name)]
        np.testing.assert_array_equal(np.concatenate(parts, axis=axis), weight)
    assert [p.shape for p in (np.zeros(spec.weight_shape("dec1"))[spec.edge_weight_slice(e)]
                              for e in spec.edges_into("dec1"))] == [(64, 32, 2, 2, 2)] * 2


def test_delays_by_destination():
    spec = build_unet_spec(UNetConfig())
    assert [(e.src, e.delay) for e in spec.edges_into("dec3")] == [("dec2", 0), ("enc0", 7)]
    assert [e.src for e in spec.edges_into("enc0")] == ["input"]
    with pytest.raises(SpikeRegError, match="no layer named"):
        spec.edges_into("nope")


def test_layer_mixing_analog_input_and_spikes_is_refused():
    with pytest.raises(SpikeRegError) as info:
        NetworkSpec(layers=(
            LayerSpec("input", "input", 1, kernel=1, padding=0),
            LayerSpec("a", "conv", 2, inputs=("input",), neuron=NEURON),
            LayerSpec("readout", "readout", 3, inputs=("a", "input")),
        ), time_steps=2, input_channels=1)
    assert "mixes the analog input with spiking inputs" in info.value.message and "\n" not in str(info.value)


def _spec(**changes: object) -> NetworkSpec:
    return build_unet_spec(UNetConfig(**{"encoder": (4, 8), "decoder": (4,), **changes}))


def test_fingerprints_agree_for_the_same_model():
    a, b = _spec(), _spec()
    assert (a.architecture_fingerprint(), a.model_fingerprint()) == (b.architecture_fingerprint(),
                                                                     b.model_fingerprint())
    assert a.architecture_fingerprint() != a.model_fingerprint()


@pytest.mark.parametrize("changes", [{"threshold": 1.5}, {"thresholds": {"enc1": 0.5}}, {"time_steps": 5},
                                     {"readout_gain": 0.93}, {"current_decay": 0.5}])
def test_model_fingerprint_sees_neurons_t_and_readout_scale(changes):
    base, other = _spec(), _spec(**changes)
    assert other.architecture_fingerprint() == base.architecture_fingerprint()
    assert other.model_fingerprint() != base.model_fingerprint()


def test_architecture_fingerprint_sees_channels():
    assert _spec(decoder=(8,)).architecture_fingerprint() != _spec().architecture_fingerprint()
