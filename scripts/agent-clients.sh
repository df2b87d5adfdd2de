#!/usr/bin/env bash
# Install the coding-agent clients the agent tests drive (Claude Code, Codex CLI, opencode,
# Continue's CLI), at pinned versions from npm, into a folder cached outside the clone; print
# that folder's bin directory last. Node and npm come from the system (scripts/system-deps.sh).
set -euo pipefail

CLIENTS=(
    "@anthropic-ai/claude-code@2.1.328"
    "@openai/codex@0.171.0"
    "opencode-ai@1.18.33"
    "@continuedev/cli@1.5.47"
)
CACHE_ROOT="${SMALLCODE_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smallcode/agent-clients}"
key="$(printf '%s\n' "${CLIENTS[@]}" | sha256sum | cut -c1-16)"
dir="$CACHE_ROOT/$key"

if [ ! -f "$dir/.complete" ]; then
    echo "agent-clients: installing ${CLIENTS[*]} into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "${CLIENTS[@]}" >&2
    touch "$dir/.complete"
fi
echo "$dir/node_modules/.bin"
