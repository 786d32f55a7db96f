"""The one description of a spiking network that every stage reads: the registration U-Net (ending in a readout),
or a sequential network read from a plain NetX file (ending in spikes; `export/netx_plain.py`).

Export, mapping, simulation and energy accounting all need the same facts: which layers exist, what feeds what (in
which channel order), the shape of every map for a given input volume, fan-in, the dense-ANN MAC count, and the
pipeline timing (every synapse adds one time step on Loihi and in Lava). Keeping them here, framework-free, means the
stages cannot drift apart.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from .connectivity import max_fan_in_taps
from .errors import SpikeRegError
from .neurons import CubaNeuron, NeuronModel
from .quantization import INPUT_BITS

Triple = tuple[int, int, int]
LayerKind = Literal["input", "conv", "convT", "readout"]
LAYER_KINDS: tuple[str, ...] = ("input", "conv", "convT", "readout")
PayloadKind = Literal["analog", "binary", "graded"]

#: Width of the analog input's payload (`fixed_point.quantize_input` makes it; `.net` stores it as `inputBits`).
ANALOG_INPUT_BITS = INPUT_BITS

#: The CUBA model's parameters under their historical name (every spiking layer used to be CUBA).
NeuronSpec = CubaNeuron

#: How the static analog input reaches the first layer: "analog" = an 8-bit graded payload through a synapse at every
#: step (its MACs paid T times); "bias" = its synaptic sum computed once per inference on the host and held as the
#: first layer's neuron bias (Loihi's `bias_mant` << `bias_exp`, added to the voltage every step). docs/netx-format.md.
#: "spikes" = the input layer sends a binary spike train, one frame per step (plain NetX networks, whose input is
#: what SLAYER blocks take: a (C, H, W, T) spike tensor); its first synapses count SynOps like any spiking edge.
INPUT_MODES: tuple[str, ...] = ("analog", "bias", "spikes")
#: The modes of a registration network (an image pair is analog), the ones a spikereg `.net` may store.
REGISTRATION_INPUT_MODES: tuple[str, ...] = ("analog", "bias")

#: Longest axonal delay a Loihi synapse/axon can hold (Davies et al. 2018; lava-dl's delay blocks use 62).
MAX_AXON_DELAY = 62


def as_triple(value: int | tuple[int, ...] | list[int], name: str) -> Triple:
    """Normalise an int or 3-sequence of non-negative ints to a 3-tuple."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if int(value) != value:
            raise SpikeRegError(f"{name} must be an integer, got {value!r}")
        return (int(value),) * 3
    seq = tuple(value)
    if len(seq) != 3 or any(int(v) != v for v in seq):
        raise SpikeRegError(f"{name} must be an int or three ints, got {value!r}")
    return tuple(int(v) for v in seq)  # type: ignore[return-value]


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a synapse kind (conv, transposed conv, readout conv) plus, unless a readout, neurons of one model.

    `inputs` lists the source layers in channel order: a decoder layer fed by a skip concatenation has two, and its
    weight is split by input channels into one synapse per source (no copy, as on Loihi).
    """

    name: str
    kind: LayerKind
    out_channels: int
    inputs: tuple[str, ...] = ()
    kernel: Triple = (3, 3, 3)
    stride: Triple = (1, 1, 1)
    padding: Triple = (1, 1, 1)
    output_padding: Triple = (0, 0, 0)
    neuron: NeuronModel | None = None

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise SpikeRegError(f"layer {self.name!r}: unknown kind {self.kind!r}")
        if not self.name or "/" in self.name:
            raise SpikeRegError(f"layer name {self.name!r} must be non-empty and contain no '/'")
        if self.out_channels <= 0:
            raise SpikeRegError(f"layer {self.name!r}: out_channels must be positive")
        for attr in ("kernel", "stride", "padding", "output_padding"):
            object.__setattr__(self, attr, as_triple(getattr(self, attr), f"layer {self.name!r} {attr}"))
        if any(k <= 0 for k in self.kernel) or any(s <= 0 for s in self.stride):
            raise SpikeRegError(f"layer {self.name!r}: kernel and stride must be positive")
        if any(p < 0 for p in self.padding + self.output_padding):
            raise SpikeRegError(f"layer {self.name!r}: padding must be non-negative")
        if self.kind == "input":
            if self.inputs:
                raise SpikeRegError(f"input layer {self.name!r} cannot have inputs")
        elif not self.inputs:
            raise SpikeRegError(f"layer {self.name!r} has no inputs")
        if len(set(self.inputs)) != len(self.inputs):
            raise SpikeRegError(f"layer {self.name!r} lists an input twice")
        spiking = self.kind in ("conv", "convT")
        if spiking and not isinstance(self.neuron, NeuronModel):
            raise SpikeRegError(f"layer {self.name!r} ({self.kind}) needs neuron parameters")
        if not spiking and self.neuron is not None:
            raise SpikeRegError(f"layer {self.name!r} ({self.kind}) has no neurons")

    @property
    def spiking(self) -> bool:
        return self.neuron is not None

    @property
    def weight_channel_axes(self) -> tuple[int, int]:
        """(input-channel axis, output-channel axis) of the weight in torch's layout: transposed conv
        (Cin, Cout, k...), conv and readout (Cout, Cin, k...)."""
        return (0, 1) if self.kind == "convT" else (1, 0)

    def output_shape(self, in_shape: Triple) -> Triple:
        """Spatial output shape for a spatial input shape (conv arithmetic as torch defines it)."""
        if self.kind == "input":
            return in_shape
        out = []
        for n, k, s, p, op in zip(in_shape, self.kernel, self.stride, self.padding, self.output_padding,
                                  strict=True):
            if self.kind == "convT":
                out.append((n - 1) * s - 2 * p + k + op)
            else:
                out.append((n + 2 * p - k) // s + 1)
        return tuple(out)  # type: ignore[return-value]


@dataclass(frozen=True)
class Edge:
    """A synapse from `src` into `dst`: its slice of dst's concatenated input channels, its axonal delay, and
    what one event on it carries (the analog input's 8-bit values cost multiply-accumulates, binary spikes adds)."""

    src: str
    dst: str
    order: int
    channel_offset: int
    channels: int
    delay: int
    payload: PayloadKind
    payload_bits: int


@dataclass(frozen=True)
class LayerGeometry:
    """Everything about one layer that depends on the input volume size."""

    name: str
    in_channels: int
    in_shape: Triple
    out_shape: Triple
    neurons: int
    fan_in: int
    macs: int
    synapses: int
    depth: int


@dataclass(frozen=True)
class NetworkSpec:
    """A validated DAG of layers in topological order, with timing (depth, delays) derived from the edges."""

    layers: tuple[LayerSpec, ...]
    time_steps: int
    input_channels: int = 2
    readout_scale: float = 1.0
    name: str = "spikereg-unet"
    input_mode: str = "analog"
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _edges: tuple[Edge, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.time_steps <= 0:
            raise SpikeRegError(f"time_steps must be positive, got {self.time_steps}")
        if not (math.isfinite(self.readout_scale) and self.readout_scale > 0):
            raise SpikeRegError(f"readout_scale must be a positive finite number, got {self.readout_scale}")
        if self.input_mode not in INPUT_MODES:
            raise SpikeRegError(f"input_mode must be one of {', '.join(INPUT_MODES)}, got {self.input_mode!r}")
        index: dict[str, int] = {}
        for i, layer in enumerate(self.layers):
            if layer.name in index:
                raise SpikeRegError(f"duplicate layer name {layer.name!r}")
            for src in layer.inputs:
                if src not in index:
                    raise SpikeRegError(f"layer {layer.name!r} reads {src!r}, which is not an earlier layer")
                if self.layers[index[src]].kind == "readout":
                    raise SpikeRegError(f"layer {layer.name!r} reads the readout {src!r}")
            if len(layer.inputs) > 1 and self.layers[0].name in layer.inputs:
                raise SpikeRegError(f"layer {layer.name!r} mixes the analog input with spiking inputs "
                                    f"({', '.join(layer.inputs)}): a layer reads either the input or spikes")
            index[layer.name] = i
        kinds = [layer.kind for layer in self.layers]
        if kinds.count("input") != 1 or kinds[0] != "input":
            raise SpikeRegError("a network needs exactly one input layer, first")
        if kinds.count("readout") > 1 or (kinds.count("readout") == 1 and kinds[-1] != "readout"):
            raise SpikeRegError("a network has at most one readout layer, and it is last")
        if len(self.layers) < 2:
            raise SpikeRegError("a network needs an input and at least one synaptic layer")
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_edges", self._derive_edges())
        if self.input_mode == "bias":
            for edge in self._edges:
                neuron = self.layer(edge.dst).neuron
                if edge.payload == "analog" and (neuron is None or not neuron.supports_bias):
                    raise SpikeRegError(f"layer {edge.dst!r}: input_mode 'bias' needs a neuron model with a bias "
                                        f"(CUBA, IF or CUBA-SR), not {getattr(neuron, 'netx_type', 'a readout')}")
        for edge in self._edges:
            if edge.delay > MAX_AXON_DELAY:
                raise SpikeRegError(
                    f"skip {edge.src}->{edge.dst} needs an axonal delay of {edge.delay} steps; Loihi holds at most "
                    f"{MAX_AXON_DELAY}"
                )

    # -- structure -------------------------------------------------------------------------------------------
    def layer(self, name: str) -> LayerSpec:
        try:
            return self.layers[self._index[name]]
        except KeyError:
            raise SpikeRegError(f"no layer named {name!r}") from None

    @property
    def input_layer(self) -> LayerSpec:
        return self.layers[0]

    @property
    def readout(self) -> LayerSpec:
        """The last layer: the non-spiking readout, or, in a network without one (plain NetX), the spiking layer
        whose spikes are the output."""
        return self.layers[-1]

    @property
    def has_readout(self) -> bool:
        """Whether the network ends in a non-spiking readout (registration U-Nets) or in spikes (plain NetX)."""
        return self.layers[-1].kind == "readout"

    def channels_of(self, name: str) -> int:
        layer = self.layer(name)
        return self.input_channels if layer.kind == "input" else layer.out_channels

    def in_channels(self, name: str) -> int:
        return sum(self.channels_of(src) for src in self.layer(name).inputs)

    def consumers(self, name: str) -> list[str]:
        return [layer.name for layer in self.layers if name in layer.inputs]

    # -- timing ----------------------------------------------------------------------------------------------
    def depths(self) -> dict[str, int]:
        """Time steps from the input to each layer's neurons: one per synapse on the longest path."""
        depth: dict[str, int] = {}
        for layer in self.layers:
            depth[layer.name] = 0 if layer.kind == "input" else 1 + max(depth[s] for s in layer.inputs)
        return depth

    def _derive_edges(self) -> tuple[Edge, ...]:
        depth = self.depths()
        out: list[Edge] = []
        for layer in self.layers:
            offset = 0
            for order, src in enumerate(layer.inputs):
                channels = self.channels_of(src)
                delay = depth[layer.name] - 1 - depth[src]
                source = self.layer(src)
                if source.neuron is None and self.input_mode == "spikes":  # a spike-train input
                    payload, bits = "binary", 1
                elif source.neuron is None:  # the analog input (a readout feeds nothing)
                    payload, bits = "analog", ANALOG_INPUT_BITS
                else:
                    bits = source.neuron.payload_bits
                    payload = "binary" if bits == 1 else "graded"
                out.append(Edge(src, layer.name, order, offset, channels, delay, payload, bits))
                offset += channels
        return tuple(out)

    def edges(self) -> list[Edge]:
        """Synapses in layer order; a skip carries the delay that lines it up with the deep path."""
        return list(self._edges)

    def edges_into(self, name: str) -> list[Edge]:
        """The synapses into one layer, in its concatenation order (their delays are its `inputDelay`)."""
        self.layer(name)
        return [edge for edge in self._edges if edge.dst == name]

    # -- weight layout ---------------------------------------------------------------------------------------
    def weight_shape(self, name: str) -> tuple[int, ...]:
        """A synaptic layer's weight in torch's layout: conv/readout (Cout, Cin, kD, kH, kW), transposed conv
        (Cin, Cout, kD, kH, kW); Cin counts all inputs concatenated."""
        layer = self.layer(name)
        if layer.kind == "input":
            raise SpikeRegError(f"the input layer {name!r} has no weight")
        shape = [0, 0, *layer.kernel]
        in_axis, out_axis = layer.weight_channel_axes
        shape[in_axis], shape[out_axis] = self.in_channels(name), layer.out_channels
        return tuple(shape)

    def edge_weight_slice(self, edge: Edge) -> tuple[slice, ...]:
        """Index of one edge's part of its destination's weight (its input channels): `weight[index]`."""
        in_axis = self.layer(edge.dst).weight_channel_axes[0]
        index = [slice(None)] * (in_axis + 1)
        index[in_axis] = slice(edge.channel_offset, edge.channel_offset + edge.channels)
        return tuple(index)

    @property
    def pipeline_depth(self) -> int:
        """Depth of the readout (or output layer): the run needs this many steps beyond T."""
        return self.depths()[self.readout.name]

    @property
    def run_steps(self) -> int:
        """Steps a pipelined (Lava/Loihi) run needs so that the readout sees all T model steps (one fewer with the
        input as bias: the first layer integrates its bias from the first step, with no input synapse before it)."""
        return self.time_steps + self.pipeline_depth - (1 if self.input_mode == "bias" else 0)

    # -- geometry --------------------------------------------------------------------------------------------
    def required_multiple(self) -> int:
        """Input sizes must be divisible by this for the skips to line up: the largest downsampling on any path from
        the input (the product of the conv strides along it; parallel branches, e.g. a residual shortcut beside a
        strided conv, count once)."""
        total: dict[str, int] = {}
        for layer in self.layers:
            before = max((total[src] for src in layer.inputs), default=1)
            total[layer.name] = before * (max(layer.stride) if layer.kind == "conv" else 1)
        return max(total.values())

    def geometry(self, input_shape: tuple[int, int, int] | list[int]) -> dict[str, LayerGeometry]:
        """Shapes, neurons, fan-in, synapses and dense-ANN MACs of every layer for one input volume size.

        MACs count what a dense ANN of the same architecture computes: conv = out voxels x Cout x Cin x k^3
        (padding included, as a framework does), transposed conv = in voxels x Cin x Cout x k^3.
        """
        shape_in = as_triple(list(input_shape), "input shape")
        if any(n <= 0 for n in shape_in):
            raise SpikeRegError(f"input shape must be positive, got {shape_in}")
        shapes: dict[str, Triple] = {}
        depth = self.depths()
        geo: dict[str, LayerGeometry] = {}
        for layer in self.layers:
            if layer.kind == "input":
                shapes[layer.name] = shape_in
                geo[layer.name] = LayerGeometry(layer.name, 0, shape_in, shape_in,
                                                self.input_channels * math.prod(shape_in), 0, 0, 0, 0)
                continue
            src_shapes = {shapes[s] for s in layer.inputs}
            if len(src_shapes) != 1:
                detail = ", ".join(f"{s}={'x'.join(map(str, shapes[s]))}" for s in layer.inputs)
                raise SpikeRegError(
                    f"input shape {'x'.join(map(str, shape_in))} does not fit the network: layer {layer.name!r} "
                    f"concatenates maps of different sizes ({detail}); use sizes divisible by "
                    f"{self.required_multiple()}"
                )
            in_shape = src_shapes.pop()
            out_shape = layer.output_shape(in_shape)
            if any(n <= 0 for n in out_shape):
                raise SpikeRegError(
                    f"input shape {'x'.join(map(str, shape_in))} is too small: layer {layer.name!r} would have an "
                    f"empty output"
                )
            shapes[layer.name] = out_shape
            cin = self.in_channels(layer.name)
            cout = layer.out_channels
            k3 = math.prod(layer.kernel)
            macs = math.prod(in_shape if layer.kind == "convT" else out_shape) * cin * cout * k3
            geo[layer.name] = LayerGeometry(
                name=layer.name, in_channels=cin, in_shape=in_shape, out_shape=out_shape,
                neurons=cout * math.prod(out_shape), fan_in=cin * max_fan_in_taps(layer, in_shape, out_shape),
                macs=macs,
                synapses=cin * cout * k3, depth=depth[layer.name],
            )
        return geo

    # -- identity --------------------------------------------------------------------------------------------
    def architecture_fingerprint(self) -> str:
        """Short hash of the architecture (names, kinds, channels, wiring, geometry): what a mapping depends on."""
        parts = [f"{self.input_channels}"]
        for layer in self.layers:
            parts.append(f"{layer.name}:{layer.kind}:{layer.out_channels}:{','.join(layer.inputs)}:{layer.kernel}:"
                         f"{layer.stride}:{layer.padding}:{layer.output_padding}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def model_fingerprint(self) -> str:
        """Short hash of the whole model but its weights: architecture, every neuron's type and parameters, T,
        readout scale and input channels. Counts and rates depend on all of these, so reports carry it."""
        parts = [self.architecture_fingerprint(), f"T={self.time_steps}", f"scale={self.readout_scale!r}",
                 f"in={self.input_channels}"]
        if self.input_mode != "analog":  # the analog default leaves every existing fingerprint as it was
            parts.append(f"input_mode={self.input_mode}")
        for layer in self.layers:
            if layer.neuron is not None:
                params = ",".join(f"{k}={v!r}" for k, v in sorted(asdict(layer.neuron).items()))
                parts.append(f"{layer.name}:{layer.neuron.netx_type}:{params}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def with_time_steps(self, time_steps: int) -> NetworkSpec:
        return replace(self, time_steps=time_steps)
