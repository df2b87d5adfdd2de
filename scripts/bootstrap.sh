#!/usr/bin/env bash
# Create ./.venv with every dependency installed, reusing a cached build when it can.
#
# Building the dependencies takes long (llama-cpp-python compiles llama.cpp from source), so
# they are installed into a venv cached outside the clone, keyed by a hash of the dependency
# lists in pyproject.toml, this script and the Python version. A changed key builds a new venv
# from scratch. ./.venv itself is a small venv that sees the cached packages through a .pth
# file and holds the project in editable mode (so the `smallcode` command exists).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
CACHE_ROOT="${SMALLCODE_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smallcode/venvs}"

requirements="$("$PYTHON" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["dev"]
print("\n".join(deps))
PY
)"
source scripts/llama-build-env.sh  # CFLAGS for llama.cpp, and LLAMA_BUILD_KEY
key="$( { echo "$requirements"; cat scripts/bootstrap.sh; "$PYTHON" -c 'import sys; print(sys.version)'; \
          echo "$LLAMA_BUILD_KEY"; } | sha256sum | cut -c1-16)"
deps="$CACHE_ROOT/$key"

if [ ! -f "$deps/.complete" ]; then
    echo "bootstrap: building the dependency venv $deps (a few minutes)"
    rm -rf "$deps"
    mkdir -p "$CACHE_ROOT"
    "$PYTHON" -m venv "$deps"
    "$deps/bin/pip" install --quiet --upgrade pip setuptools wheel
    # The CPU build of torch first, so that nothing later pulls a CUDA build.
    "$deps/bin/pip" install --quiet "$(echo "$requirements" | grep '^torch==')"
    # llama-cpp-python compiles llama.cpp with llama-build-env.sh's flags: never from pip's
    # wheel cache, which may hold a build made with other flags. The wheel it builds is kept,
    # keyed by its version and the flags, so a change to the other dependencies reinstalls
    # in minutes instead of compiling again.
    llama_req="$(echo "$requirements" | grep '^llama-cpp-python')"
    wheels="$CACHE_ROOT/../wheels/$(echo "$llama_req $LLAMA_BUILD_KEY" | sha256sum | cut -c1-16)"
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "bootstrap: compiling llama-cpp-python (10-20 minutes on 2 cores, once)"
        rm -rf "$wheels.partial"
        "$deps/bin/pip" wheel --quiet --no-deps --no-cache-dir --wheel-dir "$wheels.partial" \
            "${llama_req%%\[*}==${llama_req##*==}"
        rm -rf "$wheels" && mv "$wheels.partial" "$wheels"
    fi
    "$deps/bin/pip" install --quiet "$llama_req" --find-links "$wheels" --no-index \
        --no-deps
    echo "$requirements" > "$deps/requirements.txt"
    "$deps/bin/pip" install --quiet -r "$deps/requirements.txt"
    touch "$deps/.complete"
fi

site_dir="$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.deps-key 2>/dev/null)" != "$key" ]; then
    rm -rf .venv
    "$PYTHON" -m venv .venv
    echo "$key" > .venv/.deps-key
fi
local_site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$site_dir')" > "$local_site/_smallcode_deps.pth"
if [ ! -x .venv/bin/smallcode ]; then
    .venv/bin/pip install --quiet --no-deps -e .
fi
echo "bootstrap: .venv ready (dependencies from $deps)"
