#!/usr/bin/env bash
# What the tests need beyond Python, on a Debian-based machine: espeak-ng (the speech the media tests
# generate) and Debian's chromium (the real browser tests/test_web.py drives). Installed with apt-get where
# missing, as root or through sudo; a second run only checks. PostgreSQL is .ci/postgres.sh's.
set -euo pipefail

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
        echo "system.sh: the tests need ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 1
    }
    as_root=(sudo)
fi
command -v apt-get >/dev/null || {
    echo "system.sh: the tests need ${missing[*]}, and this machine has no apt-get: install them by hand" >&2
    exit 1
}
echo "system.sh: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
