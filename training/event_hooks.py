"""Count synaptic events on the quantized torch model with forward hooks: the Lava-free cross-check.

Hooks capture each SLAYER neuron's spike output; the counts follow from the same rules (`spikereg_deploy.counting`)
the simulators use, so a user with a volume too big for Lava still gets measured counts, and tests can compare
three independent runs.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from spikereg_deploy.counting import (
    LayerCounts,
    analog_input_macs,
    edge_fanout,
    events,
    neuron_updates,
    step_synops,
)
from spikereg_deploy.network import LayerGeometry, NetworkSpec

from .snn import SpikingUNet


def count_events(model: SpikingUNet, image: np.ndarray) -> dict[str, LayerCounts]:
    """Run the model on one (C, D, H, W) image and count spikes, input spikes, SynOps and analog MACs per layer."""
    spec = model.spec
    geo = spec.geometry(image.shape[1:])
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name, neuron in model.neurons.items():
        def hook(_mod, _inp, out, name=name):
            captured[name] = out.detach()
        handles.append(neuron.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.as_tensor(image, dtype=torch.float32)[None])
    finally:
        for h in handles:
            h.remove()
    return counts_from_spikes(spec, geo, {name: spikes[0] for name, spikes in captured.items()})


def counts_from_spikes(spec: NetworkSpec, geo: Mapping[str, LayerGeometry],
                       spikes: Mapping[str, torch.Tensor]) -> dict[str, LayerCounts]:
    """Counts of one inference from each spiking layer's output, (C, D, H, W, T) spikes or graded payloads (the
    SLAYER model's output for one sample: 0/1, or the payloads k as floats), by the project's counting rules."""
    t_steps = spec.time_steps
    counts = {layer.name: LayerCounts(layer.name, geo[layer.name].neurons) for layer in spec.layers[1:]}
    for layer in spec.layers[1:]:
        c = counts[layer.name]
        c.neuron_updates = neuron_updates(c.neurons, t_steps)
        if layer.spiking:
            out = spikes[layer.name]
            c.spikes_per_step = [int(s) for s in events(out).sum(dim=(0, 1, 2, 3))]
            c.spikes = sum(c.spikes_per_step)
            c.payload_sum = int(out.double().abs().sum().round())
        per_step = {"binary": np.zeros(t_steps, dtype=np.int64), "graded": np.zeros(t_steps, dtype=np.int64)}
        for edge in spec.edges_into(layer.name):
            if edge.payload == "analog":
                c.input_macs += analog_input_macs(spec, geo, edge)  # T x real taps, or once as a bias
                continue
            src_spikes = events(spikes[edge.src]).sum(dim=0).numpy()  # (D, H, W, T): events per position
            fan = edge_fanout(spec, geo, edge)
            c.input_spikes += int(src_spikes.sum())
            per_step[edge.payload] += [step_synops(src_spikes[..., t].astype(np.int64), fan) for t in range(t_steps)]
        c.synops_per_step = per_step["binary"].tolist()
        c.synops = int(per_step["binary"].sum())
        c.graded_synops_per_step = per_step["graded"].tolist()
        c.graded_synops = int(per_step["graded"].sum())
    return counts
