"""Part 2 of benchmarks/bench_simulators.py: the integer reference engine against a dense float32 ANN of the same
layer graph run T times; and the timing helpers both parts use."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.network import NetworkSpec


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` calls: the least disturbed by other load on a small machine."""
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def random_image(spec: NetworkSpec, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((spec.input_channels, n, n, n)).astype(np.float32)


class DenseAnn(torch.nn.Module):
    """The equivalent ANN: the spec's layer graph with float32 convs, ReLU for spiking layers, concat for skips.

    Weights are the integer mantissas / 64 (the float model's values), so the arithmetic is the real one.
    """

    def __init__(self, spec: NetworkSpec, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.spec = spec
        self.convs = torch.nn.ModuleDict()
        for layer in spec.layers[1:]:
            cin = spec.in_channels(layer.name)
            conv: torch.nn.Module
            if layer.kind == "convT":
                conv = torch.nn.ConvTranspose3d(cin, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                                                layer.output_padding, bias=False)
            else:
                conv = torch.nn.Conv3d(cin, layer.out_channels, layer.kernel, layer.stride, layer.padding, bias=False)
            with torch.no_grad():
                conv.weight.copy_(torch.as_tensor(np.asarray(weights[layer.name], dtype=np.float32) / 64))
            self.convs[layer.name] = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = {self.spec.input_layer.name: x}
        y = x
        for layer in self.spec.layers[1:]:
            srcs = [outputs[s] for s in layer.inputs]
            y = self.convs[layer.name](srcs[0] if len(srcs) == 1 else torch.cat(srcs, dim=1))
            outputs[layer.name] = torch.relu(y) if layer.spiking else y
        return y


@dataclass
class EngineTiming:
    n: int
    reference_s: float
    ann_s: float
    synops: int
    macs: int

    @property
    def slowdown(self) -> float:
        return self.reference_s / self.ann_s


def time_reference_vs_ann(spec: NetworkSpec, weights: dict[str, np.ndarray], n: int, repeats: int) -> EngineTiming:
    """Best-of-`repeats` wall time of one reference run (T steps) and of T dense ANN forwards, same threads."""
    image = random_image(spec, n)
    net = IntegerNetwork(spec, weights)
    ann = DenseAnn(spec, weights).eval()
    x = torch.as_tensor(image)[None]
    result: dict[str, Any] = {}

    def reference() -> None:
        result["run"] = net.run(image)

    def dense() -> None:
        with torch.no_grad():
            for _ in range(spec.time_steps):
                ann(x)

    if n <= 32:  # warm-up: thread pool start and conv algorithm choice happen on a first call
        reference()
        dense()
    ref_s = best_time(reference, repeats)
    ann_s = best_time(dense, repeats)
    synops = sum(c.synops for c in result["run"].counts.values())
    macs = spec.time_steps * sum(g.macs for g in spec.geometry((n, n, n)).values())
    return EngineTiming(n, ref_s, ann_s, synops, macs)
