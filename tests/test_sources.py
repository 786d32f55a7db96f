"""Pair sources: lazy, indexed, and bit-identical to the pairs the generator made before sources existed."""
from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spikereg_deploy.errors import DataError
from spikereg_deploy.imaging import sources
from spikereg_deploy.imaging.pairs import RegistrationPair
from spikereg_deploy.imaging.sources import FileSource, SyntheticSource, open_source
from spikereg_deploy.imaging.synthetic import embedded_pair, embedded_pairs

# sha256 of pairs made by `embedded_pairs(n, ...)` / `cross_template_pairs(n, ...)` at commit fcdec17, before pairs
# were built one by index: (spec, shape, seed, index) -> digest of `pair_digest`
BEFORE = {
    ("embedded", (16, 16, 16), 0, 0): "9ebb805c99eab0aac703ff7072e3297ec912764a146d5b260eff2999d0569755",
    ("embedded", (16, 16, 16), 0, 2): "b97ac77b562d313f149e0448aee572d2785bd94c6632e8407bfc60f64db9f289",
    ("embedded", (16, 16, 16), 3, 1): "ed03f4e549583d2afacaf3d48fad0de7c3476e082956206a87a30d2810d850e4",
    ("embedded", (16, 24, 16), -2, 1): "53417f4279f7fcd827a3189b8d2f8bbedead9cf70d4aec01acdbf4a86edc8a8d",
    ("embedded", (32, 32, 32), 0, 4): "4f474acaf46fc52e3cd43465419f537ca9a5a49fe43bdf884a51288bc64b5844",
    ("cross", (16, 16, 16), 0, 0): "1f1978b745906a4b555b5f57871d7cf15c91c26f77c8226b743989d9c3ea3f9a",
    ("cross", (16, 16, 16), 0, 1): "9744a20192e1411589f5ad6cae123c63d8def8912f1b20b05f43dcfbd57a3bd2",
    ("cross", (16, 16, 16), 3, 2): "79fb4650953fab2e89677959e927f3803ed1b91f344330bdc57f8d990348cc12",
    ("cross", (32, 32, 32), 1, 1): "d1f31e9546087d86ed0211d20d347017a9c81fa3b801d60c9a79a4c284d997a2",
}


def pair_digest(pair: RegistrationPair) -> str:
    digest = hashlib.sha256()
    for array in (pair.fixed, pair.moving, pair.fixed_labels, pair.moving_labels, pair.affine):
        array = np.ascontiguousarray(array)
        digest.update(str(array.dtype).encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    digest.update(pair.name.encode())
    return digest.hexdigest()


@pytest.mark.parametrize("key", sorted(BEFORE, key=str))
def test_synthetic_pairs_bit_identical_to_before(key):
    spec, shape, seed, index = key
    source = open_source(spec, shape, seed=seed, count=index + 1)
    assert pair_digest(source.pair(index)) == BEFORE[key]


def test_list_helper_and_source_agree_in_any_order():
    listed = embedded_pairs(3, shape=(16, 16, 16), seed=5)
    source = open_source("embedded", (16, 16, 16), seed=5, count=3)
    assert [pair_digest(source.pair(i)) for i in (2, 0, 1)] == [pair_digest(listed[i]) for i in (2, 0, 1)]
    assert [p.name for p in source] == ["embedded-5-0", "embedded-5-1", "embedded-5-2"]


def test_synthetic_source_builds_only_what_is_asked():
    built: list[int] = []

    def factory(index, shape, seed, config):
        built.append(index)
        return embedded_pair(index, shape, seed, config)

    source = SyntheticSource("embedded", factory, 10**9, (16, 16, 16), seed=0)
    assert len(source) == 10**9 and built == []
    pair = source.pair(123_456_789)
    assert built == [123_456_789] and pair.name == "embedded-0-123456789"
    iterator = iter(source)
    assert built == [123_456_789]
    next(iterator)
    assert built == [123_456_789, 0]


@pytest.mark.parametrize("index", [-1, 3, 2.0, True])
def test_index_out_of_range_names_the_source(index):
    source = open_source("embedded", (16, 16, 16), count=3)
    with pytest.raises(IndexError, match=r"'embedded' has 3 pairs; index .* out of range"):
        source.pair(index)


def test_empty_and_bad_specs():
    assert len(open_source("cross", (16, 16, 16), count=0)) == 0
    for spec, message in (("nonsense", "use embedded, cross"), ("zip:/x", "unknown kind 'zip'"),
                          ("l2r:", "use embedded")):
        with pytest.raises(DataError, match=message):
            open_source(spec, (16, 16, 16))
    with pytest.raises(DataError, match=">= 0"):
        open_source("embedded", (16, 16, 16), count=-1)
    with pytest.raises(DataError, match="three sizes >= 4"):
        open_source("embedded", (2, 16, 16))


def write_subject(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    labels = np.zeros((12, 12, 12), np.int16)
    labels[3:9, 3:9, 3:9] = 1
    image = (labels * 50 + rng.normal(0, 2, labels.shape)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(folder / "aligned_norm.nii.gz"))
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(folder / "aligned_seg35.nii.gz"))


def test_file_source_lists_up_front_and_loads_one_pair_at_a_time(tmp_path):
    for i in range(3):
        write_subject(tmp_path / f"s{i}", i)
    source = open_source(f"neurite:{tmp_path}", (16, 16, 16), multiple=8)
    assert isinstance(source, FileSource) and len(source) == 6 and source.name == f"neurite:{tmp_path}"
    (tmp_path / "s2" / "aligned_norm.nii.gz").write_bytes(b"broken after listing")
    first = source.pair(0)  # only s0 and s1 are read (pairs: every ordered pair, s0<-s1, s0<-s2, s1<-s0, ...)
    assert first.name == "s0<-s1" and first.fixed.shape == (16, 16, 16) and first.fixed_labels is not None
    with pytest.raises(DataError, match="s2"):
        source.pair(1)


def test_file_source_checks_the_whole_list_on_opening(tmp_path):
    with pytest.raises(DataError, match="need at least 2"):
        open_source(f"neurite:{tmp_path}", (16, 16, 16))
    with pytest.raises(DataError, match="not found"):
        open_source(f"l2r:{tmp_path / 'missing'}", (16, 16, 16))


def test_a_new_layout_is_one_table_entry(tmp_path, monkeypatch):
    for i in range(2):
        write_subject(tmp_path / f"s{i}", i)
    monkeypatch.setitem(sources.FILE_LAYOUTS, "mine", sources.FILE_LAYOUTS["neurite"])
    assert [p.name for p in open_source(f"mine:{tmp_path}", (16, 16, 16))] == ["s0<-s1", "s1<-s0"]
