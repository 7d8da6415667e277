#!/usr/bin/env bash
# System packages the labelling app's tests use: Debian's chromium + chromium-driver (the browser test) and
# postgresql (its server binaries; the tests start their own throwaway server). Quiet, and a no-op when present.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-packages: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; then
        echo "system-packages: installed ${missing[*]}"
        exit 0
    fi
    echo "system-packages: apt-get failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 10))
done
echo "system-packages: could not install ${missing[*]}" >&2
exit 1
