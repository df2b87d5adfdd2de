#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (parallel slots, continuous batching: the local tier for
# many users at once) from the llama.cpp source that llama-cpp-python's sdist carries, at the
# version pyproject.toml pins, with the patches scripts/llama-server-*.patch applied:
# - draft-probs: tokens accepted from a speculative draft get their probabilities, as without
#   speculation (the router's judge reads them);
# - token-probs: a token's probabilities come from one pass over the logits, not a copy and
#   softmax of the whole vocabulary (logprobs cost 5% of decode, BENCHMARKS.md).
# The binary is cached outside the clone, keyed by that version, this script and the patches,
# and its path printed on the last line. A few minutes on 2 cores, once.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
PYTHON="${PYTHON:-python3}"
CACHE_ROOT="${SMALLCODE_LLAMA_SERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smallcode/llama-server}"
version="$("$PYTHON" - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(re.split(r"==", d)[1] for d in deps if d.startswith("llama-cpp-python")))
PY
)"
source scripts/llama-build-env.sh  # CFLAGS for llama.cpp, and LLAMA_BUILD_KEY
# The server's own code for this CPU too, as llama.cpp builds its CPU backend (GGML_NATIVE):
# token-probs' sum over the vocabulary vectorizes to the CPU's widest vectors (0.07 ms a token
# with AVX-512, 0.45 ms with the baseline SSE2). The CPU's features are in LLAMA_BUILD_KEY.
export CXXFLAGS="$CXXFLAGS -march=native"
patches=(scripts/llama-server-*.patch)
key="$( { cat scripts/build-llama-server.sh "${patches[@]}"
          echo "$LLAMA_BUILD_KEY"; } | sha256sum | cut -c1-8)"
out="$CACHE_ROOT/$version-$key"
if [ -x "$out/bin/llama-server" ]; then
    echo "$out/bin/llama-server"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "build-llama-server: fetching the llama-cpp-python $version sdist" >&2
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" \
    -d "$work" 2>&1 | grep -v "^WARNING: Location" >&2 || true
tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
source="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
for patch_file in "${patches[@]}"; do
    (cd "$source" && GIT_CEILING_DIRECTORIES="$work" git apply -p1 "$root/$patch_file") \
        || { echo "build-llama-server: $patch_file does not apply to llama.cpp $version" >&2
             exit 1; }
done
echo "build-llama-server: compiling llama-server (a few minutes)" >&2
cmake -S "$source" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON >"$work/cmake.log" 2>&1 || { tail -20 "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
mkdir -p "$out/bin"
cp "$work/build/bin/llama-server" "$out/bin/llama-server.tmp"
mv "$out/bin/llama-server.tmp" "$out/bin/llama-server"
echo "$out/bin/llama-server"
