#!/usr/bin/env bash
# The GPU figures: capacity and latency with the larger Whisper models, in the same RESULTS format as the
# CPU run, one report per model found, plus batched-against-sequential window decoding (bench_batch).
#
# Run from the repository root on a GPU host (or in the Dockerfile.gpu image built with WITH_BENCH=true):
#   bash bench/gpu.sh                     # models under $MODELS_DIR (default /models)
#   MODELS_DIR=/srv/models SECTIONS=capacity bash bench/gpu.sh
# Model directories looked for: whisper-base-en, whisper-small-en, whisper-distil-large-v3 (the names in
# models/manifest.toml). Writes $RESULTS_DIR/RESULTS-gpu-<model>.md (default bench/) and, beside the plots,
# $RESULTS_DIR/results/gpu-<model>-batch.md.
# Nothing here is downloaded: a model that is not in $MODELS_DIR is skipped, and said so.
set -euo pipefail

MODELS_DIR="${MODELS_DIR:-/models}"
SECTIONS="${SECTIONS:-capacity,latency}"
COMPUTE_TYPE="${COMPUTE_TYPE:-float16}"
BATCH_WINDOWS="${BATCH_WINDOWS:-4,8,16,32}"
RESULTS_DIR="${RESULTS_DIR:-bench}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
MODELS=(whisper-base-en whisper-small-en whisper-distil-large-v3)

say() { printf '[gpu.sh] %s\n' "$*"; }
die() { printf '[gpu.sh] error: %s\n' "$*" >&2; exit 1; }

[ -f pyproject.toml ] && [ -d bench ] || die "run from the repository root (or /opt/bleepline in the image)"

# 1. A GPU the driver sees, and one CTranslate2 sees: a CPU-only wheel or a driver too old for CUDA 12.8
#    would otherwise show up as CPU figures in a file named gpu.
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: no NVIDIA driver here (or run the container with --gpus all)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    || die "nvidia-smi cannot talk to the driver"
count="$(PYTHONPATH=src "$PYTHON" -c 'import ctranslate2; print(ctranslate2.get_cuda_device_count())')" \
    || die "cannot import ctranslate2 with $PYTHON"
[ "$count" -ge 1 ] || die "ctranslate2 sees no CUDA device (driver too old for CUDA 12.8, or no --gpus)"
say "ctranslate2 sees $count CUDA device(s)"

# 2. Each model present: the benchmark sections on the GPU, and batching's gain on it.
found=0
for name in "${MODELS[@]}"; do
    dir="$MODELS_DIR/$name"
    if [ ! -f "$dir/model.bin" ]; then
        say "$name: not in $MODELS_DIR, skipped"
        continue
    fi
    found=$((found + 1))
    tag="${name#whisper-}"
    say "$name: checking its files against the manifest (sums are printed where it has none)"
    PYTHONPATH=src "$PYTHON" -m bleepline models verify "$dir" --name "$name"
    say "$name: sections $SECTIONS"
    PYTHONPATH=. "$PYTHON" -m bench --device cuda --model "$dir" --compute-type "$COMPUTE_TYPE" \
        --only "$SECTIONS" --out "$RESULTS_DIR/RESULTS-gpu-$tag.md"
    say "$name: batched against sequential windows ($BATCH_WINDOWS)"
    mkdir -p "$RESULTS_DIR/results"
    PYTHONPATH=. "$PYTHON" -m bench.bench_batch --device cuda --model "$dir" --compute-type "$COMPUTE_TYPE" \
        --windows "$BATCH_WINDOWS" --repeats 10 | tee "$RESULTS_DIR/results/gpu-$tag-batch.md"
done
[ "$found" -ge 1 ] || die "none of ${MODELS[*]} under $MODELS_DIR: nothing measured"
say "done: $found model(s); reports in $RESULTS_DIR/RESULTS-gpu-*.md"
