"""Pair sources: a named, indexed set of labelled registration pairs, each built only when asked for.

A source knows its length without building anything, and `pair(i)` builds pair i alone (synthetic pairs depend only
on (seed, i); file pairs load one pair's files), so a runner can split a data set by index and each worker builds
only its share. `open_source` turns the text a user gives (`embedded`, `cross`, `l2r:ROOT`, `neurite:ROOT`) into a
source; adding a kind of data is one entry in `SYNTHETIC_SOURCES` or `FILE_LAYOUTS`.
"""
from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence

from ..errors import DataError
from .pairs import PairFiles, RegistrationPair, learn2reg_pair_files, load_pair, neurite_oasis_pair_files
from .synthetic import SynthConfig, checked_grid_shape, cross_template_pair, embedded_pair

__all__ = ["PairSource", "SyntheticSource", "FileSource", "SYNTHETIC_SOURCES", "FILE_LAYOUTS", "SOURCE_SPECS",
           "open_source"]

SOURCE_SPECS = "embedded, cross, l2r:ROOT or neurite:ROOT"


class PairSource(abc.ABC):
    """`len(source)` pairs, pair i built by `source.pair(i)`; iterating builds them one at a time, in order."""

    name: str  # the spec it was opened from, e.g. "embedded" or "l2r:/data/OASIS"

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def _build(self, index: int) -> RegistrationPair: ...

    @abc.abstractmethod
    def key(self, index: int) -> str:
        """A name of pair `index` known without building it, unique within the source (results databases key on it)."""

    def pair(self, index: int) -> RegistrationPair:
        """Build pair `index` (0 <= index < len); anything else is an IndexError naming the source."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self):
            raise IndexError(f"pair source {self.name!r} has {len(self)} pairs; index {index!r} is out of range")
        return self._build(index)

    def __iter__(self) -> Iterator[RegistrationPair]:
        return (self.pair(i) for i in range(len(self)))


PairFactory = Callable[[int, Sequence[int], int, SynthConfig | None], RegistrationPair]  # (index, shape, seed, config)


class SyntheticSource(PairSource):
    """`count` seeded synthetic pairs on the network grid (`synthetic.embedded_pair` or `cross_template_pair`)."""

    def __init__(self, name: str, factory: PairFactory, count: int, shape: Sequence[int], seed: int = 0,
                 config: SynthConfig | None = None) -> None:
        if count < 0:
            raise DataError(f"pair source {name!r}: the number of pairs must be >= 0, got {count}")
        self.name, self.count, self.seed, self.config = name, int(count), int(seed), config
        self.shape = checked_grid_shape(shape)
        self._factory = factory

    def __len__(self) -> int:
        return self.count

    def _build(self, index: int) -> RegistrationPair:
        return self._factory(index, self.shape, self.seed, self.config)

    def key(self, index: int) -> str:
        return f"{self.name}-{self.seed}-{index}"


class FileSource(PairSource):
    """Pairs listed from a dataset folder (the whole list is checked on opening), loaded and preprocessed one by one."""

    def __init__(self, name: str, files: Sequence[PairFiles], target_shape: Sequence[int] | None = None,
                 multiple: int = 1, resolution: float | None = None, prealign: bool = False) -> None:
        self.name, self.files, self.prealign = name, tuple(files), prealign
        self.target_shape = None if target_shape is None else tuple(int(n) for n in target_shape)
        self.multiple, self.resolution = int(multiple), resolution

    def __len__(self) -> int:
        return len(self.files)

    def _build(self, index: int) -> RegistrationPair:
        return load_pair(self.files[index], self.target_shape, self.multiple, self.resolution, self.prealign)

    def key(self, index: int) -> str:
        return self.files[index].name


SYNTHETIC_SOURCES: dict[str, PairFactory] = {"embedded": embedded_pair, "cross": cross_template_pair}


def _l2r(root: str, split: str, pair_list: str | None) -> list[PairFiles]:
    if pair_list is not None:
        raise DataError("--pair-list applies to neurite:ROOT folders; Learn2Reg pairs come from its dataset JSON "
                        "(choose them with --split)")
    return learn2reg_pair_files(root, split)


def _neurite(root: str, split: str, pair_list: str | None) -> list[PairFiles]:
    if split != "val":
        raise DataError(f"--split {split}: a neurite-oasis folder has no splits; name pairs with --pair-list FILE")
    return neurite_oasis_pair_files(root, pair_list=pair_list)


FILE_LAYOUTS: dict[str, Callable[[str, str, str | None], list[PairFiles]]] = {  # (root, split, pair list)
    "l2r": _l2r,  # Learn2Reg OASIS: the split's pairs from its *_dataset.json
    "neurite": _neurite,  # neurite-oasis: every ordered pair of subjects, or a pair-list file
}


def open_source(spec: str, shape: Sequence[int], seed: int = 0, count: int = 8, multiple: int = 1,
                config: SynthConfig | None = None, *, split: str = "val", pair_list: str | None = None,
                resolution: float | None = None, prealign: bool = False) -> PairSource:
    """The pair source a user names: a synthetic kind (`count` pairs from `seed` on the `shape` grid) or
    `LAYOUT:ROOT` (every pair of the dataset's `split` or `pair_list`, resampled to `shape`, or to `resolution` mm,
    in sizes that are multiples of `multiple`; `prealign`: an affine stage first, `imaging.prealign`)."""
    if spec in SYNTHETIC_SOURCES:
        return SyntheticSource(spec, SYNTHETIC_SOURCES[spec], count, shape, seed, config)
    layout, _, root = spec.partition(":")
    if not root:
        raise DataError(f"data source {spec!r}: use {SOURCE_SPECS}")
    if layout not in FILE_LAYOUTS:
        raise DataError(f"data source {spec!r}: unknown kind {layout!r} (use {SOURCE_SPECS})")
    return FileSource(spec, FILE_LAYOUTS[layout](root, split, pair_list), shape, multiple, resolution, prealign)
