"""Core/chip profiles as data: the mapper's limits and energies come from TOML files with a source beside
each number.

Hardware figures are partly secondary or unpublished (docs/hardware-facts.md), so none is a constant in code: a user
who knows better copies a profile, changes it and passes the file. Loading validates every field and names the
file and the field on error, because a silently wrong limit would give a plan that cannot run.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpikeRegError, read_toml

PROFILE_FORMAT = "spikereg-core-profile"
PROFILE_DIR = Path(__file__).parent.parent / "profiles"  # package data: spikereg_deploy/profiles/*.toml
BUILTIN_PROFILES = ("loihi2", "loihi1")
#: How a core's input axons address a conv's source: one axon per source neuron and channel (`per_channel`), or
#: one per source pixel with the channels as population atoms over shared synapses (`population`, nengo-loihi's
#: conv convention). docs/hardware-facts.md says what is known about Loihi 2's compiler.
AXON_MODELS = ("per_channel", "population")

#: (section, key, kind): every field a profile must give. Kinds: int, float (> 0), fraction (0 < f <= 1),
# bool, mesh, axon_model (one of AXON_MODELS), count (an integer >= 0).
REQUIRED_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("core", "neurons", "int"),
    ("core", "synaptic_memory_bits", "int"),
    ("core", "bits_per_weight", "float"),
    ("core", "shared_weights", "bool"),
    ("core", "input_axons", "int"),
    ("core", "output_axons", "int"),
    ("core", "fill_factor", "fraction"),
    ("core", "axon_model", "axon_model"),
    ("synapse", "index_bits", "count"),
    ("synapse", "group_header_bits", "count"),
    ("synapse", "synapses_per_group", "int"),
    ("synapse", "word_bits", "int"),
    ("synapse", "max_delay_bits", "count"),
    ("chip", "cores", "int"),
    ("chip", "usable_cores", "int"),
    ("chip", "mesh", "mesh"),
    ("chip", "cores_per_router", "int"),
)
#: Optional fields: energies in pJ (missing = not costed) and the largest system built.
OPTIONAL_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("system", "max_chips", "int"),
    ("energy", "synaptic_op_pj", "energy"),
    ("energy", "graded_synaptic_op_pj", "energy"),
    ("energy", "neuron_update_active_pj", "energy"),
    ("energy", "neuron_update_inactive_pj", "energy"),
    ("energy", "spike_within_tile_pj", "energy"),
    ("energy", "hop_east_west_pj", "energy"),
    ("energy", "hop_north_south_pj", "energy"),
    ("energy", "chip_hop_pj", "energy"),
)


@dataclass(frozen=True)
class SynapseEncoding:
    """How a core stores one synapse list (nengo-loihi's `SynapseConfig.bits_per_axon`, the public reference).

    A list of n synapses is cut into groups of at most `synapses_per_group`; each group costs n x (weight + index
    + delay bits) plus `group_header_bits` and is rounded up to whole `word_bits` memory words.
    """

    index_bits: int
    group_header_bits: int
    synapses_per_group: int
    word_bits: int
    max_delay_bits: int

    def delay_bits(self, delay: int, where: str) -> int:
        """Narrowest delay field that holds `delay` steps (0 when the edge has none)."""
        bits = int(delay).bit_length()
        if bits > self.max_delay_bits:
            raise SpikeRegError(
                f"an axonal delay of {delay} steps needs {bits} delay bits, more than synapse.max_delay_bits "
                f"({self.max_delay_bits})",
                where,
            )
        return bits

    def list_bits(self, n_synapses: np.ndarray | int, bits_per_synapse: float) -> np.ndarray:
        """Memory bits of synapse lists of `n_synapses` each (element-wise), headers and word rounding included."""
        n = np.asarray(n_synapses, dtype=np.int64)
        full, rest = np.divmod(n, self.synapses_per_group)
        word = self.word_bits

        def group(m: np.ndarray | int) -> np.ndarray:
            bits = np.ceil(np.asarray(m) * bits_per_synapse + self.group_header_bits).astype(np.int64)
            return -(-bits // word) * word

        return full * group(self.synapses_per_group) + np.where(rest > 0, group(rest), 0)


@dataclass(frozen=True)
class CoreProfile:
    """Limits of one neuromorphic core and the chip around it, and per-operation energies (pJ) where known."""

    name: str
    neurons: int
    synaptic_memory_bits: int
    bits_per_weight: float
    shared_weights: bool
    input_axons: int
    output_axons: int
    fill_factor: float
    cores_per_chip: int
    usable_cores: int
    mesh: tuple[int, int]
    cores_per_router: int
    axon_model: str
    synapse_encoding: SynapseEncoding
    max_chips: int | None = None
    energy_pj: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    description: str = ""

    @property
    def neuron_budget(self) -> int:
        """Compartments the planner fills per core (the fill-factor target), never below one."""
        return max(1, int(math.floor(self.neurons * self.fill_factor)))

    def router_of(self, core: int) -> tuple[int, int]:
        """(row, col) of a usable core's router: usable cores fill mesh positions in row-major order."""
        router = core // self.cores_per_router
        return divmod(router, self.mesh[1])

    def limits(self) -> dict[str, float]:
        return {
            "neurons": self.neurons,
            "synaptic_memory_bits": self.synaptic_memory_bits,
            "input_axons": self.input_axons,
            "output_axons": self.output_axons,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "neurons": self.neurons,
            "synaptic_memory_bits": self.synaptic_memory_bits,
            "bits_per_weight": self.bits_per_weight,
            "shared_weights": self.shared_weights,
            "input_axons": self.input_axons,
            "output_axons": self.output_axons,
            "fill_factor": self.fill_factor,
            "axon_model": self.axon_model,
            "synapse_encoding": asdict(self.synapse_encoding),
            "cores_per_chip": self.cores_per_chip,
            "usable_cores": self.usable_cores,
            "mesh": list(self.mesh),
            "cores_per_router": self.cores_per_router,
            "max_chips": self.max_chips,
            "energy_pj": dict(self.energy_pj),
            "sources": dict(self.sources),
        }

    def replace_limits(self, **changes: Any) -> CoreProfile:
        """A copy with some limits changed (what-if studies); validated like a loaded profile."""
        profile = replace(self, **changes)
        keys = (
            "neurons",
            "synaptic_memory_bits",
            "bits_per_weight",
            "input_axons",
            "output_axons",
            "usable_cores",
        )
        for key in keys:
            if not getattr(profile, key) > 0:
                raise SpikeRegError(f"{key} must be positive, got {getattr(profile, key)}", profile.path)
        if not 0 < profile.fill_factor <= 1:
            raise SpikeRegError(f"fill factor must be in (0, 1], got {profile.fill_factor}", profile.path)
        if profile.axon_model not in AXON_MODELS:
            raise SpikeRegError(
                f"axon model must be one of {', '.join(AXON_MODELS)}, got {profile.axon_model!r}", profile.path
            )
        enc = profile.synapse_encoding
        if min(enc.synapses_per_group, enc.word_bits) < 1 or min(enc.index_bits, enc.group_header_bits) < 0:
            raise SpikeRegError(f"synapse encoding needs groups and words of at least 1, got {enc}", profile.path)
        _check_chip(profile, profile.path or profile.name)
        return profile


def _value(raw: dict[str, Any], section: str, key: str, path: str) -> tuple[Any, str] | None:
    entry = raw.get(section, {})
    if not isinstance(entry, dict):
        raise SpikeRegError(f"[{section}] must be a table", path)
    if key not in entry:
        return None
    item = entry[key]
    if isinstance(item, dict):
        if "value" not in item:
            raise SpikeRegError(f"field {section}.{key} has no 'value'", path)
        source = item.get("source")
        if not isinstance(source, str) or not source.strip():
            raise SpikeRegError(f"field {section}.{key} needs a non-empty 'source' string", path)
        return item["value"], source
    raise SpikeRegError(f'field {section}.{key} must be {{ value = ..., source = "..." }}', path)


def _check(value: Any, kind: str, name: str, path: str) -> Any:
    if kind == "axon_model":
        if value not in AXON_MODELS:
            raise SpikeRegError(f"field {name} must be one of {', '.join(AXON_MODELS)}, got {value!r}", path)
        return value
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpikeRegError(f"field {name} must be an integer >= 0, got {value!r}", path)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpikeRegError(f"field {name} must be true or false, got {value!r}", path)
        return value
    if kind == "mesh":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise SpikeRegError(f"field {name} must be [rows, cols], got {value!r}", path)
        if min(value) <= 0:
            raise SpikeRegError(f"field {name} must be positive, got {value!r}", path)
        return (int(value[0]), int(value[1]))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpikeRegError(f"field {name} must be a number, got {value!r}", path)
    if kind == "int" and int(value) != value:
        raise SpikeRegError(f"field {name} must be an integer, got {value!r}", path)
    if kind == "energy":
        if value < 0:
            raise SpikeRegError(f"field {name} must be non-negative, got {value!r}", path)
        return float(value)
    if value <= 0:
        raise SpikeRegError(f"field {name} must be positive, got {value!r}", path)
    if kind == "fraction" and value > 1:
        raise SpikeRegError(f"field {name} must be in (0, 1], got {value!r}", path)
    return int(value) if kind == "int" else float(value)


def _check_chip(profile: CoreProfile, path: str) -> None:
    if profile.usable_cores > profile.cores_per_chip:
        raise SpikeRegError(
            f"field chip.usable_cores ({profile.usable_cores}) exceeds chip.cores ({profile.cores_per_chip})",
            path,
        )
    positions = profile.mesh[0] * profile.mesh[1] * profile.cores_per_router
    if profile.cores_per_chip > positions:
        raise SpikeRegError(
            f"field chip.mesh {profile.mesh[0]}x{profile.mesh[1]} with {profile.cores_per_router} "
            f"cores per router holds {positions} cores, fewer than chip.cores "
            f"({profile.cores_per_chip})",
            path,
        )


def parse_profile(raw: dict[str, Any], path: str) -> CoreProfile:
    """Validate a parsed TOML profile: a missing or non-positive field is a SpikeRegError naming file and
    field."""
    if raw.get("format", PROFILE_FORMAT) != PROFILE_FORMAT:
        raise SpikeRegError(
            f"not a core profile (format {raw.get('format')!r}, expected {PROFILE_FORMAT!r})", path
        )
    if raw.get("version", 1) != 1:
        raise SpikeRegError(f"profile version {raw.get('version')!r} is not 1", path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for section, key, kind in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        found = _value(raw, section, key, path)
        if found is None:
            if (section, key, kind) in REQUIRED_FIELDS:
                raise SpikeRegError(f"missing field {section}.{key}", path)
            continue
        values[f"{section}.{key}"] = _check(found[0], kind, f"{section}.{key}", path)
        sources[f"{section}.{key}"] = found[1]
    name = raw.get("name") or Path(path).stem
    energy = {key.split(".", 1)[1]: val for key, val in values.items() if key.startswith("energy.")}
    profile = CoreProfile(
        name=str(name),
        neurons=values["core.neurons"],
        synaptic_memory_bits=values["core.synaptic_memory_bits"],
        bits_per_weight=values["core.bits_per_weight"],
        shared_weights=values["core.shared_weights"],
        input_axons=values["core.input_axons"],
        output_axons=values["core.output_axons"],
        fill_factor=values["core.fill_factor"],
        axon_model=values["core.axon_model"],
        synapse_encoding=SynapseEncoding(
            index_bits=values["synapse.index_bits"],
            group_header_bits=values["synapse.group_header_bits"],
            synapses_per_group=values["synapse.synapses_per_group"],
            word_bits=values["synapse.word_bits"],
            max_delay_bits=values["synapse.max_delay_bits"],
        ),
        cores_per_chip=values["chip.cores"],
        usable_cores=values["chip.usable_cores"],
        mesh=values["chip.mesh"],
        cores_per_router=values["chip.cores_per_router"],
        max_chips=values.get("system.max_chips"),
        energy_pj=energy,
        sources=sources,
        path=path,
        description=str(raw.get("description", "")),
    )
    _check_chip(profile, path)
    return profile


def load_profile(name_or_path: str | Path) -> CoreProfile:
    """A built-in profile by name (loihi2, loihi1) or a user's TOML file."""
    text = str(name_or_path)
    if text in BUILTIN_PROFILES:
        path = PROFILE_DIR / f"{text}.toml"
    else:
        path = Path(text)
        if path.suffix == ".toml" or os.sep in text:  # meant as a file: say which one is missing
            return parse_profile(read_toml(path, "profile"), str(path))
        if not path.is_file():
            raise SpikeRegError(
                f"unknown profile {text!r}: choose {', '.join(BUILTIN_PROFILES)} or a .toml file"
            )
    return parse_profile(read_toml(path, "profile"), str(path))
