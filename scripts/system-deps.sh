#!/usr/bin/env bash
# System packages the project needs beyond Python's, installed with apt when this runs as root
# on Debian/Ubuntu; otherwise it says what to install.
# - bubblewrap: the operating-system boundary around the execution checks
#   (router/checks/sandbox.py). Without it the checks are off (unless
#   checks.allow_unisolated: true); nothing else depends on it.
# - chromium: only the dashboard's browser test drives it (tests/service/test_dashboard_browser.py
#   is skipped without it). Skipped here when SMALLCODE_NO_BROWSER=1.
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ "${SMALLCODE_NO_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
else
    echo "system-deps: missing ${missing[*]}; install them (Debian/Ubuntu: sudo apt install" \
         "${missing[*]}). Without bubblewrap the execution checks stay off; without chromium" \
         "the dashboard's browser test is skipped" >&2
fi
