"""The phantom rendered as another scanner would: field of view, contrast, noise, coil bias, MONOCHROME1."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from annotator.imaging.dicom_io import as_monochrome2, load_slice
from annotator.imaging.phantom import DEFAULT_SCANNER, Scanner, draw_patient, render_slice
from annotator.imaging.phantom_dicom import generate_dataset, read_truth

OTHER = Scanner(fov_mm=(250.0, 280.0), canal_offset_x_mm=(-20.0, 20.0), canal_offset_y_mm=(-12.0, 30.0),
                noise_rel=(0.04, 0.05), bias_strength=(0.9, 1.1), bias_tilt=0.25, contrast=0.8)


def _files(root: Path) -> dict[tuple[str, int], Path]:
    out = {}
    for f in sorted(root.rglob("*.dcm")):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[(str(ds.PatientID), int(ds.InstanceNumber))] = f
    return out


def test_a_scanner_changes_how_the_patient_looks_not_who_the_patient_is() -> None:
    a = [draw_patient(np.random.default_rng([7, i]), index=i) for i in range(30)]
    b = [draw_patient(np.random.default_rng([7, i]), index=i, scanner=OTHER) for i in range(30)]
    for pa, pb in zip(a, b, strict=True):
        assert (pa.stage, pa.severity, pa.seed, pa.sac_area0_mm2, pa.n_slices) == \
               (pb.stage, pb.severity, pb.seed, pb.sac_area0_mm2, pb.n_slices)
        assert 250.0 <= pb.fov_mm <= 280.0 and 160.0 <= pa.fov_mm <= 220.0
        assert -20.0 <= pb.canal_offset_mm[0] <= 20.0 and -12.0 <= pb.canal_offset_mm[1] <= 30.0
        assert 0.04 <= pb.noise_rel <= 0.05 and 0.9 <= pb.bias_strength <= 1.1
        assert (pb.contrast, pb.bias_tilt) == (0.8, 0.25) and (pa.contrast, pa.bias_tilt) == (1.0, 0.0)
    # the same sac, measured on pixels of another size
    _, ta = render_slice(a[0], 0.0, matrix=128)
    _, tb = render_slice(b[0], 0.0, matrix=128)
    assert tb.pixel_spacing_mm > ta.pixel_spacing_mm
    assert tb.sac_area_mm2 == pytest.approx(ta.sac_area_mm2, rel=0.03)


def test_bias_tilt_brightens_the_right_side_and_darkens_the_left() -> None:
    spec = draw_patient(np.random.default_rng(3))
    flat, _ = render_slice(spec, 0.0, matrix=128)
    tilted, _ = render_slice(dataclasses.replace(spec, bias_tilt=0.3), 0.0, matrix=128)
    body = (flat > 600) & (flat < 3500) & (tilted < 4000)  # tissue, not air, nothing clipped
    ratio = np.where(body, tilted.astype(float) / np.maximum(flat, 1), np.nan)
    right, left = np.nanmedian(ratio[:, :32]), np.nanmedian(ratio[:, -32:])
    assert 1.15 < right < 1.3 and 0.7 < left < 0.85  # columns run patient right -> left


def test_lower_contrast_lifts_the_grey_tissues_towards_csf() -> None:
    spec = draw_patient(np.random.default_rng(4))
    hard, _ = render_slice(spec, 0.0, matrix=128)
    soft, _ = render_slice(dataclasses.replace(spec, contrast=0.7), 0.0, matrix=128)

    def grey_over_bright(img: np.ndarray) -> float:
        tissue = img[img > 300]
        return float(np.median(tissue) / np.percentile(tissue, 99))

    assert grey_over_bright(soft) > 1.08 * grey_over_bright(hard)


def test_more_noise_shows_in_the_air() -> None:
    spec = draw_patient(np.random.default_rng(5))
    quiet, _ = render_slice(dataclasses.replace(spec, noise_rel=0.02), 0.0, matrix=128)
    loud, _ = render_slice(dataclasses.replace(spec, noise_rel=0.05), 0.0, matrix=128)

    def pixel_noise(img: np.ndarray) -> float:  # robust sd of neighbour differences (edges are rare)
        d = np.diff(img.astype(float), axis=1)
        return float(np.median(np.abs(d - np.median(d))))

    assert 1.8 < pixel_noise(loud) / pixel_noise(quiet) < 2.7  # 2.5 x the noise sd


def test_a_scanner_is_checked() -> None:
    with pytest.raises(ValueError, match="fov_mm"):
        Scanner(fov_mm=(220.0, 160.0))
    with pytest.raises(ValueError, match="bias_tilt"):
        Scanner(bias_tilt=1.0)
    assert Scanner() == DEFAULT_SCANNER


def test_default_scanner_writes_the_historical_files_and_another_writes_other_uids(tmp_path: Path) -> None:
    plain, explicit, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(plain, 2, seed=8, matrix=64)
    generate_dataset(explicit, 2, seed=8, matrix=64, scanner=Scanner())

    def digest(root: Path) -> str:
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()

    assert digest(plain) == digest(explicit)
    rows = generate_dataset(other, 2, seed=8, matrix=64, scanner=OTHER)
    assert not {r.sop_instance_uid for r in rows} & {r.sop_instance_uid for r in read_truth(plain)}
    assert [r.stage for r in rows] == [r.stage for r in read_truth(plain)]


def test_monochrome1_files_hold_the_same_image_inverted(tmp_path: Path) -> None:
    mono2, mono1, half = tmp_path / "m2", tmp_path / "m1", tmp_path / "half"
    generate_dataset(mono2, 2, seed=6, matrix=64)
    generate_dataset(mono1, 2, seed=6, matrix=64, monochrome1_fraction=1.0)
    generate_dataset(half, 3, seed=6, matrix=64, slices_per_patient=2, monochrome1_fraction=0.5)
    f2, f1 = _files(mono2), _files(mono1)
    assert f2.keys() == f1.keys()
    for key, path in f1.items():
        ds = pydicom.dcmread(path)
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        loaded = load_slice(path)
        assert loaded.monochrome1
        shown = as_monochrome2(loaded)  # what the models read
        diff = shown - load_slice(f2[key]).pixels
        assert np.ptp(diff) == 0  # the same image up to an offset, which the models' scaling removes
        wc2 = float(pydicom.dcmread(f2[key], stop_before_pixels=True).WindowCenter)
        assert float(ds.WindowCenter) == pytest.approx(4095 - wc2, abs=1.0)
    kinds = [pydicom.dcmread(p, stop_before_pixels=True).PhotometricInterpretation for p in _files(half).values()]
    assert sorted(kinds) == ["MONOCHROME1"] * 3 + ["MONOCHROME2"] * 3
