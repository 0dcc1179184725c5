"""Dockerfile.gpu, checked without Docker: a pinned CUDA runtime base, a non-root user, a working health
check, and every path, setting and port it names real in the code."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from bleepline.config import CONFIG_ENV, KEYS, env_name, load_config
from bleepline.control import HEALTH_PATH
from bleepline.manifest import MANIFEST_ENV

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile.gpu"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    assert not current, "the file ends inside a continued line"
    out = []
    for text in joined:
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def named(word: str) -> list[str]:
    return [rest for instruction, rest in instructions() if instruction == word]


def environment() -> dict[str, str]:
    """What the ENV instructions set (KEY=VALUE form, values without spaces)."""
    values: dict[str, str] = {}
    for rest in named("ENV"):
        for pair in rest.split():
            key, sep, value = pair.partition("=")
            assert sep, f"ENV {rest!r}: use KEY=VALUE"
            values[key] = value.strip('"')
    return values


def test_the_base_is_a_cuda_12_runtime_image_pinned_by_tag() -> None:
    (base,) = named("FROM")
    match = re.fullmatch(
        r"nvidia/cuda:(12\.\d+\.\d+)-(cudnn-)?runtime-ubuntu(22|24)\.04(@sha256:[0-9a-f]{64})?", base
    )
    assert match, base


def test_the_ctranslate2_pin_is_the_one_the_base_image_was_chosen_for() -> None:
    # The base image's CUDA (12.8, cuBLAS only) follows this wheel's build: a new ctranslate2 in the
    # project means checking its CUDA and cuDNN needs again (docs/gpu.md) before moving the pin.
    (pin,) = re.findall(r'"ctranslate2==([\d.]+)"', DOCKERFILE.read_text())
    assert pin == metadata.version("ctranslate2")
    assert "12.8" in named("FROM")[0]


def test_it_runs_as_a_non_root_user_it_creates() -> None:
    users = named("USER")
    assert users, "no USER: the relay would run as root"
    assert users[-1] not in ("root", "0", "0:0")
    order = [word for word, _ in instructions()]
    assert order.index("USER") < order.index("ENTRYPOINT")
    assert any("useradd" in rest and users[-1] in rest for rest in named("RUN"))


def test_the_entrypoint_is_bleepline_serve() -> None:
    (entrypoint,) = named("ENTRYPOINT")
    assert json.loads(entrypoint) == ["bleepline", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "bleepline" in scripts


def test_every_bleepline_variable_is_a_setting_the_code_reads() -> None:
    env = environment()
    known = {env_name(key) for key in KEYS} | {MANIFEST_ENV, CONFIG_ENV}
    for name in (n for n in env if n.startswith("BLEEPLINE_")):
        assert name in known, f"{name} is read by nothing"
    # A GPU image: the device setting exists and says cuda; the model is a directory or the default.
    assert "device" in KEYS
    assert env[env_name("device")] == "cuda"
    assert "model" in KEYS
    assert "asr_batch" in KEYS


def test_the_images_settings_load_once_the_operator_adds_address_and_token() -> None:
    env = environment()
    token_variable = env[env_name("token_env")]
    operator = {env_name("advertise"): "203.0.113.7", token_variable: "a-token"}
    config = load_config({}, environ={**env, **operator})
    assert config.device == "cuda"
    assert config.control is not None
    assert config.store == Path("/var/lib/bleepline/calls")
    assert config.recipients == (Path("/keys/recipient.pub"),)
    # With a model directory from the mounted volume:
    mounted = load_config({}, environ={**env, **operator, env_name("model"): "/models/whisper-small-en"})
    assert mounted.model == "/models/whisper-small-en"


def test_the_manifest_is_where_the_image_says() -> None:
    env = environment()
    workdir = Path(named("WORKDIR")[-1])
    copies = {rest.split()[-1].rstrip("/"): rest.split()[0] for rest in named("COPY")}
    manifest = Path(env[MANIFEST_ENV])
    relative = manifest.relative_to(workdir).as_posix()
    assert copies.get(f"./{relative}") == "models/manifest.toml"


def test_everything_it_copies_exists_and_is_not_ignored() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignored  # everything else stays out of the build context
    for rest in named("COPY"):
        for source in rest.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert f"!{source.rstrip('/')}" in ignored or f"!{source.rstrip('/')}/" in ignored, source
    assert (ROOT / "bench" / "gpu.sh").is_file()


def test_the_exposed_port_is_the_control_port() -> None:
    env = environment()
    port = env[env_name("control")].rpartition(":")[2]
    exposed = {p.split("/")[0] for rest in named("EXPOSE") for p in rest.split()}
    assert port in exposed


def _healthcheck_code() -> str:
    (check,) = named("HEALTHCHECK")
    assert "curl" not in check
    assert "wget" not in check
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[:2] == ["python3", "-c"]
    code: str = command[2]
    assert HEALTH_PATH in code
    return code


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_passes_on_ok_and_fails_while_draining(status: int, healthy: bool) -> None:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == HEALTH_PATH else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"BLEEPLINE_CONTROL": f"0.0.0.0:{server.server_address[1]}", "PATH": ""}
        done = subprocess.run(
            [sys.executable, "-c", _healthcheck_code()], env=env, capture_output=True, timeout=30
        )
    finally:
        server.shutdown()
    assert (done.returncode == 0) is healthy, done.stderr


# -- bench/gpu.sh, on a machine without a GPU: its checks, and what it would run --------------------------

FAKE_PYTHON = """#!/bin/sh
# Stands in for Python: CTranslate2 sees $FAKE_CUDA devices; every other call is logged, one per line.
case "$*" in
  *get_cuda_device_count*) echo "$FAKE_CUDA" ;;
  *) echo "$*" >> "$CALLS" ;;
esac
"""


def run_gpu_sh(
    tmp_path: Path, *, smi: bool, cuda: int, models: tuple[str, ...]
) -> tuple[int, str, list[str]]:
    bin_dir, models_dir = tmp_path / "bin", tmp_path / "models"
    bin_dir.mkdir()
    for name in models:
        (models_dir / name).mkdir(parents=True)
        (models_dir / name / "model.bin").write_bytes(b"")
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    if smi:
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA H200, 570.00, 143771 MiB'\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PYTHON": str(python),
        "MODELS_DIR": str(models_dir),
        "RESULTS_DIR": str(tmp_path / "out"),
        "FAKE_CUDA": str(cuda),
        "CALLS": str(calls),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    logged = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, done.stdout + done.stderr, logged


def test_gpu_sh_stops_without_a_driver(tmp_path: Path) -> None:
    code, output, calls = run_gpu_sh(tmp_path, smi=False, cuda=1, models=("whisper-small-en",))
    assert code == 1
    assert "nvidia-smi not found" in output
    assert calls == []


def test_gpu_sh_stops_when_ctranslate2_sees_no_gpu(tmp_path: Path) -> None:
    code, output, calls = run_gpu_sh(tmp_path, smi=True, cuda=0, models=("whisper-small-en",))
    assert code == 1
    assert "ctranslate2 sees no CUDA device" in output
    assert calls == []


def test_gpu_sh_runs_the_sections_on_cuda_for_each_model_present(tmp_path: Path) -> None:
    code, output, calls = run_gpu_sh(
        tmp_path, smi=True, cuda=1, models=("whisper-small-en", "whisper-distil-large-v3")
    )
    assert code == 0, output
    assert "whisper-base-en: not in" in output
    small, distil = tmp_path / "models" / "whisper-small-en", tmp_path / "models" / "whisper-distil-large-v3"
    out = tmp_path / "out"
    assert calls == [
        f"-m bleepline models verify {small} --name whisper-small-en",
        f"-m bench --device cuda --model {small} --compute-type float16 --only capacity,latency "
        f"--out {out}/RESULTS-gpu-small-en.md",
        f"-m bench.bench_batch --device cuda --model {small} --compute-type float16 --windows 4,8,16,32 "
        "--repeats 10",
        f"-m bleepline models verify {distil} --name whisper-distil-large-v3",
        f"-m bench --device cuda --model {distil} --compute-type float16 --only capacity,latency "
        f"--out {out}/RESULTS-gpu-distil-large-v3.md",
        f"-m bench.bench_batch --device cuda --model {distil} --compute-type float16 --windows 4,8,16,32 "
        "--repeats 10",
    ]


def test_gpu_sh_says_so_when_no_model_is_there(tmp_path: Path) -> None:
    code, output, _ = run_gpu_sh(tmp_path, smi=True, cuda=1, models=())
    assert code == 1
    assert "nothing measured" in output
