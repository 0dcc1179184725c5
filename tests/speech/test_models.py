from __future__ import annotations

from pathlib import Path

import pytest

from bleepline import manifest
from bleepline.speech.models import DEFAULT_MODEL, ModelError, ModelSpec, resolve_model


def test_default_model_is_the_bundled_tiny_en_checked_against_the_manifest() -> None:
    spec = resolve_model()
    assert spec.name == DEFAULT_MODEL
    assert (spec.path / "model.bin").is_file()
    assert spec.verified
    assert (spec.compute_type, spec.device, spec.cpu_threads) == ("int8", "cpu", 1)


def test_altered_model_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    altered = tmp_path / "manifest.toml"
    real = manifest.manifest_path().read_text()
    altered.write_text(real.replace('"model.bin" = "1a5a', '"model.bin" = "0000'))
    monkeypatch.setenv(manifest.MANIFEST_ENV, str(altered))
    monkeypatch.setattr(manifest, "_verified", set())
    with pytest.raises(ModelError, match="checksum differs"):
        resolve_model()


def test_missing_manifest_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(manifest.MANIFEST_ENV, str(tmp_path / "nowhere.toml"))
    monkeypatch.setattr(manifest, "_verified", set())
    with pytest.raises(ModelError, match="manifest not found"):
        resolve_model()


def test_local_directory_model_is_checked_for_shape(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(tmp_path / "absent")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="not a file"):
        resolve_model(tmp_path / "file.bin")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"missing model\.bin"):
        resolve_model(tmp_path / "half")


def test_local_directory_with_a_model_resolves(tmp_path: Path) -> None:
    bundled = resolve_model().path
    spec = resolve_model(bundled, compute_type="float32", cpu_threads=2)
    assert (spec.path, spec.compute_type, spec.cpu_threads, spec.verified) == (bundled, "float32", 2, False)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"compute_type": "int3"}, "unknown compute type"),
        ({"device": "tpu"}, "unknown device"),
        ({"cpu_threads": -1}, "cpu threads"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ModelError, match=problem):
        ModelSpec("x", Path("."), **kwargs)  # type: ignore[arg-type]
