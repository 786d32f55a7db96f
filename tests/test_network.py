"""The network description: shapes, MACs against torch hooks, timing and validation."""
from __future__ import annotations

import math

import pytest
import torch

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.network import LayerSpec, NetworkSpec, NeuronSpec
from spikereg_deploy.unet import UNetConfig, build_unet_spec


def _dense_ann(spec: NetworkSpec) -> dict[str, torch.nn.Module]:
    mods: dict[str, torch.nn.Module] = {}
    for layer in spec.layers[1:]:
        cin = spec.in_channels(layer.name)
        if layer.kind == "convT":
            mods[layer.name] = torch.nn.ConvTranspose3d(cin, layer.out_channels, layer.kernel, layer.stride,
                                                        layer.padding, layer.output_padding, bias=False)
        else:
            mods[layer.name] = torch.nn.Conv3d(cin, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                                               bias=False)
    return mods


def _hook_macs(spec: NetworkSpec, shape: tuple[int, int, int]) -> tuple[dict[str, int], dict[str, tuple]]:
    """MACs and output shapes of a plain torch ANN of the same architecture, counted by forward hooks."""
    mods = _dense_ann(spec)
    macs: dict[str, int] = {}
    shapes: dict[str, tuple] = {}

    def hook(name):
        def fn(mod, inp, out):
            k = math.prod(mod.kernel_size)
            if isinstance(mod, torch.nn.ConvTranspose3d):
                macs[name] = inp[0].numel() * mod.out_channels * k
            else:
                macs[name] = out.numel() * mod.in_channels * k
            shapes[name] = tuple(out.shape[2:])
        return fn

    for name, mod in mods.items():
        mod.register_forward_hook(hook(name))
    outs = {"input": torch.zeros(1, spec.input_channels, *shape)}
    with torch.no_grad():
        for layer in spec.layers[1:]:
            x = torch.cat([outs[s] for s in layer.inputs], dim=1)
            outs[layer.name] = torch.relu(mods[layer.name](x))
    return macs, shapes


@pytest.mark.parametrize("shape", [(16, 16, 16), (16, 24, 32), (32, 32, 32)])
def test_shapes_and_macs_match_torch_hooks(shape):
    spec = build_unet_spec(UNetConfig())
    geo = spec.geometry(shape)
    macs, shapes = _hook_macs(spec, shape)
    for name in macs:
        assert geo[name].out_shape == shapes[name], name
        assert geo[name].macs == macs[name], name
    assert geo["readout"].out_shape == shape


def test_timing_depths_and_skip_delays():
    spec = build_unet_spec(UNetConfig())
    depth = spec.depths()
    assert depth["enc0"] == 1 and depth["bottleneck"] == 5 and depth["readout"] == 10
    delays = {(e.src, e.dst): e.delay for e in spec.edges()}
    # every input of a layer arrives at the same step: depth(src) + 1 + delay == depth(dst)
    for e in spec.edges():
        assert depth[e.src] + 1 + e.delay == depth[e.dst]
    assert delays[("enc2", "dec1")] == 3 and delays[("enc1", "dec2")] == 5 and delays[("enc0", "dec3")] == 7
    assert spec.run_steps == spec.time_steps + 10


def test_concat_channel_order():
    spec = build_unet_spec(UNetConfig())
    edges = [e for e in spec.edges() if e.dst == "dec1"]
    assert [(e.src, e.channel_offset, e.channels) for e in edges] == [("dec0", 0, 64), ("enc2", 64, 64)]
    assert spec.in_channels("dec1") == 128


def test_fan_in():
    spec = build_unet_spec(UNetConfig())
    geo = spec.geometry((16, 16, 16))
    assert geo["enc1"].fan_in == 16 * 27
    assert geo["dec1"].fan_in == 128  # k=2, s=2: one tap per axis
    assert geo["dec3"].fan_in == 32 * 27


@pytest.mark.parametrize("shape", [(12, 16, 16), (20, 16, 16)])
def test_shape_not_divisible_is_refused(shape):
    spec = build_unet_spec(UNetConfig())
    with pytest.raises(SpikeRegError, match="divisible by 8"):
        spec.geometry(shape)


def test_validation_errors():
    neuron = NeuronSpec(1024, 128, 64)
    with pytest.raises(SpikeRegError):
        NeuronSpec(5000, 0, 64)
    with pytest.raises(SpikeRegError, match="not an earlier layer"):
        NetworkSpec(layers=(LayerSpec("input", "input", 2, kernel=1, padding=0),
                            LayerSpec("a", "conv", 4, inputs=("b",), neuron=neuron)), time_steps=2)
    with pytest.raises(SpikeRegError, match="needs neuron"):
        LayerSpec("a", "conv", 4, inputs=("input",))
    with pytest.raises(SpikeRegError, match="decoder needs"):
        UNetConfig(encoder=(4, 8, 16), decoder=(8,))


def test_fingerprint_changes_with_architecture():
    a = build_unet_spec(UNetConfig()).architecture_fingerprint()
    b = build_unet_spec(UNetConfig(decoder=(64, 32, 16, 8))).architecture_fingerprint()
    assert a != b and a == build_unet_spec(UNetConfig()).architecture_fingerprint()
