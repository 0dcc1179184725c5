"""Models from a directory (a GPU host's /models), the manifest's entries for them, and `bleepline models`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bleepline import cli, manifest
from bleepline.audio.files import read_audio_chunks
from bleepline.speech.asr import StreamingRecognizer, comparable
from bleepline.speech.models import ModelError, default_compute_type, load_whisper, resolve_model

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
GPU_MODELS = ("whisper-base-en", "whisper-small-en", "whisper-distil-large-v3")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The bundled tiny.en laid out as an operator's model directory would be (its files linked)."""
    directory = tmp_path / "models" / "whisper-small-en"
    directory.mkdir(parents=True)
    for file in resolve_model().path.iterdir():
        (directory / file.name).symlink_to(file)
    return directory


def test_a_model_directory_resolves_loads_and_transcribes(model_dir: Path) -> None:
    spec = resolve_model(model_dir)
    assert (spec.name, spec.path, spec.device, spec.verified) == ("whisper-small-en", model_dir, "cpu", False)
    recognizer = StreamingRecognizer(spec)
    for chunk in read_audio_chunks(FIXTURES / "phone_awb_8k.wav"):
        recognizer.push(chunk)
    recognizer.end()
    heard = " ".join(comparable(w.text) for u in recognizer.updates() for w in u.final)
    assert "5 5 5 0 1 4 7" in heard


def test_a_directory_for_a_gpu_takes_the_device_and_its_default_precision(model_dir: Path) -> None:
    spec = resolve_model(model_dir, device="cuda", compute_type=default_compute_type("cuda"))
    assert (spec.device, spec.compute_type) == ("cuda", "float16")
    assert default_compute_type("cpu") == "int8"
    assert default_compute_type("auto") == "auto"


def test_a_gpu_model_without_a_gpu_is_a_one_line_error(model_dir: Path) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="cannot load the model") as caught:
        load_whisper(resolve_model(model_dir, device="cuda", compute_type="float16"))
    assert "\n" not in str(caught.value)


# -- the manifest --------------------------------------------------------------------------------------------


def test_the_manifest_names_the_gpu_models_without_inventing_sizes_or_sums() -> None:
    entries = tomllib.loads(manifest.manifest_path().read_text())
    for name in GPU_MODELS:
        entry = entries[name]
        assert entry["kind"] == "ctranslate2-whisper"
        assert entry["languages"] == ["en"]
        assert entry["source"].startswith("hf:Systran/")
        # Never measured here: no size, no sums, and the way to check a copy.
        assert entry["bytes"] == "unknown"
        assert "sha256" not in entry
        assert "bleepline models verify" in entry["checksum"]
    assert len(entries["whisper-tiny-en"]["sha256"]) == 4  # the measured entries are untouched


def test_the_bundled_model_still_verifies_against_the_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "_verified", set())
    assert resolve_model().verified


# -- bleepline models ----------------------------------------------------------------------------------------


def test_models_list_shows_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("whisper-tiny-en", *GPU_MODELS):
        assert name in out
    assert "4 file sums" in out
    assert "no sums" in out


def test_models_verify_passes_the_bundled_copy(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(resolve_model().path)
    assert cli.main(["models", "verify", path, "--name", "whisper-tiny-en"]) == 0
    assert "matches the manifest's 'whisper-tiny-en'" in capsys.readouterr().out


def test_models_verify_fails_an_altered_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "whisper-tiny-en"
    copy.mkdir()
    for file in resolve_model().path.iterdir():
        (copy / file.name).symlink_to(file)
    (copy / "vocabulary.txt").unlink()
    (copy / "vocabulary.txt").write_text("altered\n")
    assert cli.main(["models", "verify", str(copy)]) == cli.EXIT_ERROR
    captured = capsys.readouterr()
    assert "DIFFERS  vocabulary.txt" in captured.out
    assert "1 file(s) do not match" in captured.err


def test_models_verify_measures_a_model_the_manifest_has_no_sums_for(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["models", "verify", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "no sums for 'whisper-small-en'" in out
    assert "[whisper-small-en.sha256]" in out
    expected = manifest.sha256_of(model_dir / "model.bin")
    assert f'"model.bin" = "{expected}"' in out


def test_models_verify_refuses_what_is_not_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["models", "verify", str(tmp_path)]) == cli.EXIT_ERROR
    assert "missing model.bin" in capsys.readouterr().err
