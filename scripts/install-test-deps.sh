#!/usr/bin/env bash
# Install what the test suite needs beyond the Python venv, doing nothing that is already done:
#   * Debian packages redis-server (Sentinel and Cluster run from the same binary), chromium,
#     prometheus (for promtool) and nginx-light (forward-auth and a dot-segment-resolving
#     upstream in the tests), with apt-get; `apt-get update` runs only when one of them is
#     missing; sudo is used only when not root. No service is started: tests run their own
#     servers on loopback ports.
#   * npm's oidc-provider for tests/oidc_provider, with `npm ci`, only when node_modules is
#     missing or older than package-lock.json.
# Quiet on success; on failure it says what failed and shows the failing command's output.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
provider_dir="$repo_root/tests/oidc_provider"
log="$(mktemp -t install-test-deps.XXXXXX)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "install-test-deps: $1" >&2
    if [[ -s "$log" ]]; then
        echo "--- output (last 40 lines) ---" >&2
        tail -n 40 "$log" >&2
    fi
    exit 1
}

# Run a command with its output captured in $log; on failure report it and stop.
quietly() {
    local what="$1"
    shift
    if ! "$@" >"$log" 2>&1; then
        fail "$what failed: $*"
    fi
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        fail "need root (or sudo) to run: $*"
    fi
}

# --- Debian packages -----------------------------------------------------------------------
missing=()
for package in redis-server chromium prometheus nginx-light; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install by hand: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quietly "apt-get update" as_root apt-get update -q
    quietly "apt-get install ${missing[*]}" \
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- npm oidc-provider -----------------------------------------------------------------------
command -v node >/dev/null 2>&1 || fail "node is not on PATH (needed for tests/oidc_provider)"
command -v npm >/dev/null 2>&1 || fail "npm is not on PATH (needed for tests/oidc_provider)"
[[ -f "$provider_dir/package-lock.json" ]] || fail "$provider_dir/package-lock.json is missing"

marker="$provider_dir/node_modules/.package-lock.json"
if [[ ! -d "$provider_dir/node_modules" || ! -f "$marker" \
      || "$provider_dir/package-lock.json" -nt "$marker" ]]; then
    quietly "npm ci in tests/oidc_provider" \
        npm ci --prefix "$provider_dir" --no-audit --no-fund --loglevel=error
    # npm ci keeps the lock's mtime; make node_modules visibly newer than the lock.
    touch "$marker"
fi
