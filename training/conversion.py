"""ANN-to-SNN conversion: layer-wise weight transfer, percentile normalisation, threshold calibration.

Weights are normalised by activation percentiles (Rueckauer et al. 2017) so rates carry the ANN's activations, then
scaled to fill Loihi's 8-bit mantissa range; each layer's threshold is then calibrated, in layer order on the SNN's own
spikes, so its mean rate matches the ANN activation it replaces (clipped to one spike per step). For layers fed by a
skip concatenation, `connection` normalisation scales each source by its own statistics (Spiking-UNet), `layer` uses
one statistic for the concatenated input.

A QCFS teacher (`qcfs.py`) needs no statistics: its clips are the activations' ceilings, so they normalise the
weights, and for a neuron that resets by subtraction each clip *is* the threshold (in normalised units, 1), the
weights scaled so that threshold is exactly a mantissa. Then at T = L the SNN's rates reproduce the quantized
teacher up to how unevenly spikes arrive (exact for a constant input current, `tests/test_qcfs.py`). A QCFS teacher
converted to a reset-to-zero neuron keeps the clips as normalisation and calibrates the thresholds.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.neurons import registry
from spikereg_deploy.quantization import THRESHOLD_MANT_MAX, THRESHOLD_MANT_MIN, WEIGHT_SCALE
from spikereg_deploy.unet import UNetConfig, build_unet_spec

from .ann import AnnUNet
from .snn import SpikingUNet

WEIGHT_FILL = 3.9  # largest |w| after scaling, just inside the 8-bit range [-4, 3.97] (float units)
THRESHOLD_MIN, THRESHOLD_MAX = THRESHOLD_MANT_MIN / WEIGHT_SCALE, THRESHOLD_MANT_MAX / WEIGHT_SCALE


@dataclass
class LayerConversion:
    name: str
    percentile_activation: float
    weight_scale: float
    threshold: float
    target_rate: float
    rate: float


def percentile_of(x: torch.Tensor, p: float) -> float:
    flat = x.detach().flatten().double()
    if flat.numel() > 2_000_000:
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:2_000_000]]
    return max(float(torch.quantile(flat, p / 100)), 1e-6)


def convert(ann: AnnUNet, calibration: torch.Tensor, percentile: float = 99.9, normalisation: str = "connection",
            bisection_steps: int = 10, snn_config: UNetConfig | None = None, threshold_scale: float = 1.0
            ) -> tuple[SpikingUNet, list[LayerConversion]]:
    """Build a SpikingUNet from a trained teacher; `calibration` is (N, 2, D, H, W) in [0, 1]. `snn_config` (the
    teacher's by default) sets the SNN's neuron model, T and input mode; its architecture must be the teacher's.
    `threshold_scale` multiplies every converted threshold (the threshold-balancing knob a tuner searches: above 1
    fewer, later spikes; below 1 more), before the readout gain is fitted to the result."""
    if normalisation not in ("connection", "layer"):
        raise ValueError("normalisation must be 'connection' or 'layer'")
    spec = ann.spec
    snn_config = snn_config or ann.config
    if build_unet_spec(snn_config).architecture_fingerprint() != spec.architecture_fingerprint():
        raise SpikeRegError("the SNN's architecture (encoder, decoder, kernels, channels) must be the teacher's")
    clips = ann.clips()
    if registry.neuron_model(snn_config.neuron_model).netx_type == "SDNN":
        return _convert_sigma_delta(ann, calibration, percentile, snn_config, threshold_scale)
    snn_config = _with_payload_levels(snn_config, ann.config)
    levels = snn_config.max_payload if _graded(snn_config) else 1  # payload units per normalised activation
    clip_thresholds = registry.neuron_model(snn_config.neuron_model).subtractive_reset and (bool(clips) or levels > 1)
    ann.eval()
    with torch.no_grad():
        target_disp, acts = ann(calibration, return_activations=True)
    lam = {spec.input_layer.name: 1.0}
    for name, a in acts.items():
        if name != spec.input_layer.name:
            lam[name] = clips[name] if clips else percentile_of(a, percentile)
    snn = SpikingUNet(snn_config)
    report: list[LayerConversion] = []
    with torch.no_grad():
        for layer in spec.layers[1:]:
            w = ann.convs[layer.name].weight.detach().double().clone()
            cat_lam = None
            if normalisation == "layer" and len(layer.inputs) > 1:
                cat_lam = percentile_of(torch.cat([acts[s] for s in layer.inputs], dim=1), percentile)
            for edge in spec.edges_into(layer.name):
                w[spec.edge_weight_slice(edge)] *= cat_lam if cat_lam is not None else lam[edge.src]
                if edge.src != spec.input_layer.name:
                    w[spec.edge_weight_slice(edge)] /= levels  # a graded source sends `levels` per unit
            if layer.kind == "readout":
                gain = float(w.abs().max()) / WEIGHT_FILL
                snn.synapses[layer.name].weight.copy_((w / gain).float())
                snn.config = replace(snn.config, readout_gain=gain)
                continue
            w /= lam[layer.name]
            scale = WEIGHT_FILL / float(w.abs().max())
            if clip_thresholds:  # threshold = normalised 1 / levels (the payload unit) x scale, exactly a mantissa
                step = float(np.clip(np.floor(scale * WEIGHT_SCALE / levels), THRESHOLD_MANT_MIN, THRESHOLD_MANT_MAX))
                scale = step * levels / WEIGHT_SCALE
            snn.synapses[layer.name].weight.copy_((w * scale).float())
            target = float(acts[layer.name].div(lam[layer.name]).clamp(0, 1).mean())
            if clip_thresholds:
                threshold, rate = scale / levels, float("nan")  # measured below, in one pass
                snn.set_threshold(layer.name, threshold)
            else:
                threshold, rate = _calibrate_threshold(snn, layer.name, calibration, target, scale, bisection_steps)
            report.append(LayerConversion(layer.name, lam[layer.name], scale, threshold, target, rate))
    thresholds = {r.name: r.threshold * threshold_scale for r in report}
    final = SpikingUNet(replace(snn.config, thresholds=thresholds))
    final.load_integer_weights(snn.integer_weights())
    if clip_thresholds:
        with torch.no_grad():
            spikes = final(calibration).spikes
        # graded layers: the mean payload over L, the normalised activation it carries (comparable to the target)
        report = [replace(r, rate=float(spikes[r.name].mean()) / levels) for r in report]
    _fit_readout_gain(final, calibration, target_disp)
    return final.eval(), report


#: The largest value a teacher's clip maps to in a sigma-delta layer (2^12 payload units per value; 16-bit messages
#: hold 8).
SD_ACTIVATION_MAX = 2.0
#: ... and the largest the layer's calibration peak may map to. The SNN has no clip (lava-nc's SigmaDelta has
#: none): it computes the teacher's ReLU network unclipped, whose peaks can lie far above the clips, so each scale
#: also keeps the unclipped teacher's peak on the calibration images at half the 16-bit message.
SD_PEAK = 4.0
#: The delta threshold as a fraction of the teacher's quantization step clip / L. QCFS rounds to the nearest step
#: (its shift, +1/2); a sigma-delta ReLU sends its activation exactly once it reaches the threshold, so half a step
#: is the threshold whose dead zone matches QCFS's rounding to 0 (CUBA-MT's half-threshold start is the same shift).
SD_THRESHOLD_STEP = 0.5
#: A ReLU teacher has no levels: its sigma-delta thresholds are this fraction of the layer's scaled activation range.
SD_RELU_LEVELS = 16


def _convert_sigma_delta(ann: AnnUNet, calibration: torch.Tensor, percentile: float, snn_config: UNetConfig,
                         threshold_scale: float = 1.0) -> tuple[SpikingUNet, list[LayerConversion]]:
    """Sigma-delta (SDNN) conversion: payloads carry activation values (not rates), so each layer's weights take its
    sources in their own scale (the source's normalised activation a / lambda times its scale s), and the layer's
    activation is s x a / lambda, s filling the 8-bit weights but at most `SD_ACTIVATION_MAX` and `SD_PEAK` over the
    unclipped teacher's peak; lambda is the teacher's clip (QCFS) or activation percentile. The threshold is
    `SD_THRESHOLD_STEP` x the teacher's step s / L.

    The readout: payloads are values x 2^12, weights mantissas (x 64), so the readout's sum over T is
    2^18 x W a summed over the steps' deltas: the last activation once in input_mode "bias" (all deltas of a static
    input), T times it in "analog" (sigma integrates the current every step). displacement = readout_sum x
    readout_scale / T, readout_scale = gain / 64, so the gain is the weights' gain x T / 2^12 (bias) or / 2^12
    (analog); the least-squares fit to the teacher then refines it, as for every neuron.
    """
    spec, clips = ann.spec, ann.clips()
    levels = ann.config.activation_levels if ann.config.activation == "qcfs" else SD_RELU_LEVELS
    ann.eval()
    with torch.no_grad():
        target_disp, acts = ann(calibration, return_activations=True)
        unclipped = {spec.input_layer.name: calibration}  # what the sigma-delta ReLUs compute: no clip, no floor
        for layer in (layer for layer in spec.layers[1:] if layer.kind != "readout"):
            z = ann.convs[layer.name](torch.cat([unclipped[s] for s in layer.inputs], dim=1))
            unclipped[layer.name] = torch.relu(z)
    lam = {spec.input_layer.name: 1.0}
    scale = {spec.input_layer.name: 1.0}  # the SNN's input to the first layer is the image itself (the bias)
    for name, a in acts.items():
        if name != spec.input_layer.name:
            lam[name] = clips[name] if clips else percentile_of(a, percentile)
    snn = SpikingUNet(snn_config)
    report: list[LayerConversion] = []
    thresholds: dict[str, float] = {}
    payload_unit = float(1 << 12)
    with torch.no_grad():
        for layer in spec.layers[1:]:
            w = ann.convs[layer.name].weight.detach().double().clone()
            for edge in spec.edges_into(layer.name):
                w[spec.edge_weight_slice(edge)] *= lam[edge.src] / scale[edge.src]
            if layer.kind == "readout":
                gain = float(w.abs().max()) / WEIGHT_FILL
                snn.synapses[layer.name].weight.copy_((w / gain).float())
                steps = snn_config.time_steps if snn_config.input_mode == "bias" else 1
                snn.config = replace(snn.config, readout_gain=gain * steps / payload_unit)
                continue
            w /= lam[layer.name]
            peak = float(unclipped[layer.name].max()) / lam[layer.name]
            scale[layer.name] = min(WEIGHT_FILL / float(w.abs().max()), SD_ACTIVATION_MAX, SD_PEAK / max(peak, 1e-6))
            snn.synapses[layer.name].weight.copy_((w * scale[layer.name]).float())
            mant = np.clip(np.floor(SD_THRESHOLD_STEP * scale[layer.name] / levels * WEIGHT_SCALE),
                           THRESHOLD_MANT_MIN, THRESHOLD_MANT_MAX)
            thresholds[layer.name] = float(mant) / WEIGHT_SCALE
            target = float(acts[layer.name].div(lam[layer.name]).clamp(0, 1).mean())
            report.append(LayerConversion(layer.name, lam[layer.name], scale[layer.name], thresholds[layer.name],
                                          target, float("nan")))
    final = SpikingUNet(replace(snn.config, thresholds={k: v * threshold_scale for k, v in thresholds.items()}))
    final.load_integer_weights(snn.integer_weights())
    with torch.no_grad():  # "rate": the layer's mean payload per neuron and step, in its normalised activation
        spikes = final(calibration).spikes
    report = [replace(r, rate=float(spikes[r.name].sum(-1).mean()) / payload_unit / r.weight_scale) for r in report]
    _fit_readout_gain(final, calibration, target_disp)
    return final.eval(), report


def _graded(config: UNetConfig) -> bool:
    """Whether the config's neurons send graded payloads (the multi-threshold model)."""
    return config.neuron_for("").payload_bits > 1


def _with_payload_levels(snn_config: UNetConfig, teacher: UNetConfig) -> UNetConfig:
    """A graded SNN's largest payload per step: the config's, or (0) the QCFS teacher's levels L, so that one step
    carries the teacher's quantized activation exactly, or for a ReLU teacher the widest payload; never wider
    than the payload bits hold."""
    if not _graded(snn_config) or snn_config.max_payload:
        return snn_config
    widest = (1 << snn_config.payload_bits) - 1
    levels = teacher.activation_levels if teacher.activation == "qcfs" else widest
    return replace(snn_config, max_payload=min(levels, widest))


def _calibrate_threshold(snn: SpikingUNet, name: str, images: torch.Tensor, target: float, scale: float,
                         steps: int) -> tuple[float, float]:
    """Bisect the threshold (log scale) so this layer's mean spike rate matches `target` (upstream fixed)."""
    lo, hi = np.log(THRESHOLD_MIN), np.log(THRESHOLD_MAX)
    best = (float(np.exp((lo + hi) / 2)), -1.0)

    def rate_at(th: float) -> float:
        snn.set_threshold(name, th)
        return float(snn(images, stop_after=name).spikes[name].mean())

    guess = float(np.clip(scale, THRESHOLD_MIN, THRESHOLD_MAX))
    lo, hi = np.log(max(THRESHOLD_MIN, guess / 64)), np.log(min(THRESHOLD_MAX, guess * 64))
    for _ in range(steps):
        mid = float(np.exp((lo + hi) / 2))
        r = rate_at(mid)
        if best[1] < 0 or abs(r - target) < abs(best[1] - target):
            best = (mid, r)
        if r > target:
            lo = np.log(mid)
        else:
            hi = np.log(mid)
    snn.set_threshold(name, best[0])
    return best


def _fit_readout_gain(snn: SpikingUNet, images: torch.Tensor, target_disp: torch.Tensor) -> None:
    """Least-squares scalar gain so the SNN readout's mean matches the teacher's displacement."""
    with torch.no_grad():
        raw = snn(images).displacement / snn.config.readout_gain
    denom = float((raw * raw).sum())
    if denom > 0:
        gain = float((raw * target_disp).sum()) / denom
        if gain > 0:
            snn.set_readout_gain(gain)
