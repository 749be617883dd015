#!/usr/bin/env bash
# The GPU check (issue 18): prints one JSON line. See benchmarks/gpu/README.md.
#
#   bash benchmarks/gpu/check.sh [--smoke] [--davis ROOT] [--out DIR] [--budget S] ...
#
# Puts this tree on the import path, installs the carried wheels (hydra-core, omegaconf,
# antlr4-python3-runtime, iopath, sam2) into a folder of their own when they cannot be imported
# and benchmarks/gpu/carry/wheels holds them, then runs benchmarks/gpu/check.py with the same
# arguments. Environment: PYTHON (default: .venv/bin/python when there is one, else python3),
# MOSEG_GPU_WHEELS (wheel folder), MOSEG_GPU_SITE (where they go, default /tmp/moseg-gpu-site),
# MOSEG_DAVIS_ROOT, MOSEG_GPU_CHECK_SMOKE=1 (same as --smoke).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
WHEELS="${MOSEG_GPU_WHEELS:-$ROOT/benchmarks/gpu/carry/wheels}"
SITE="${MOSEG_GPU_SITE:-/tmp/moseg-gpu-site}"
# this tree first (the GPU machine has no moseg installed), then the carried packages
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"

# module -> the distribution that provides it
missing() {
    "$PYTHON" - <<'EOF'
import importlib.util

wanted = {
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "antlr4": "antlr4-python3-runtime",
    "iopath": "iopath",
    "sam2": "sam2",
}
print(" ".join(d for m, d in wanted.items() if importlib.util.find_spec(m) is None))
EOF
}

need="$(missing)"
if [[ -n "$need" ]]; then
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "gpu check: installing $need from $WHEELS into $SITE" >&2
        # --no-deps: everything else they need is on the machine already (README.md)
        # shellcheck disable=SC2086
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --disable-pip-version-check --root-user-action=ignore --target "$SITE" --find-links "$WHEELS" $need
        need="$(missing)"
    fi
    if [[ -n "$need" ]]; then
        echo "gpu check: cannot import $need; the parts that need them will fail" \
            "(carry their wheels: benchmarks/gpu/README.md)" >&2
    fi
fi

exec "$PYTHON" "$ROOT/benchmarks/gpu/check.py" "$@"
