#!/usr/bin/env bash
# Install the real aider-chat into a venv of its own, cached outside the clone and keyed by the
# pinned version, for the end-to-end tests (tests/clients/test_aider.py). It never goes into the
# project's venv: aider pins ~100 packages (its own litellm, openai, ...) that would clash.
# Prints the path of the venv's `aider` executable on its last line.
set -euo pipefail

AIDER_VERSION="${AIDER_VERSION:-0.86.2}"
PYTHON="${PYTHON:-python3}"
CACHE_ROOT="${SMALLCODE_AIDER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smallcode}"
venv="$CACHE_ROOT/aider-venv-$AIDER_VERSION"

if [ ! -f "$venv/.complete" ]; then
    echo "aider-venv: installing aider-chat==$AIDER_VERSION into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$CACHE_ROOT"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aider-chat==$AIDER_VERSION" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/aider"
