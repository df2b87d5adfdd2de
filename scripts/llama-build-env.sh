# Sourced by bootstrap.sh and build-llama-server.sh before they compile llama.cpp (for
# llama-cpp-python and for llama-server): the compiler flags it is built with, and
# LLAMA_BUILD_KEY, which goes into both build caches' keys.
#
# llama.cpp compiles for the CPU it is built on (-march=native), so the CPU's features are in
# the key. Intel AMX is left out: on a Xeon with AMX (Sapphire Rapids and later),
# llama.cpp's AMX matrix multiply (ggml_backend_amx_mul_mat) crashed the first decode of the
# 0.5B coder with a segmentation fault (llama-cpp-python 0.3.36, 2026-12-02); AVX-512 alone
# works. The -mno-amx-* flags win over -march=native whatever their order (GCC keeps
# explicitly set ISA flags), and do nothing on a CPU without AMX.
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CFLAGS="${CFLAGS:-} $no_amx"
export CXXFLAGS="${CXXFLAGS:-} $no_amx"
LLAMA_BUILD_KEY="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | sha256sum | cut -c1-16) $no_amx"
