#!/usr/bin/env bash
# System packages the project needs beyond Python's: bubblewrap, the operating-system boundary
# around the execution checks (router/checks/sandbox.py). Installed with apt when this runs as
# root on Debian/Ubuntu; otherwise says what to install. Without it the execution checks are
# off (unless checks.allow_unisolated: true); nothing else depends on it.
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing bubblewrap (isolates the execution checks)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
    fi
else
    echo "system-deps: bubblewrap is missing; install it (Debian/Ubuntu: sudo apt install" \
         "bubblewrap), or the execution checks stay off" >&2
fi
