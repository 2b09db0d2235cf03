#!/usr/bin/env bash
# Render an HTML report with headless Chromium and save a PNG, to check how it looks in a browser.
#
#   scripts/screenshot_report.sh REPORT.html [OUT.png] [WIDTHxHEIGHT]
#
# REPORT.html comes from `summarizer report outputs/ --format html -o report.html`; OUT.png
# defaults to REPORT.png next to it, the window to 1280x2000. Needs /usr/bin/chromium (Debian:
# `apt-get install -y chromium`; override with CHROMIUM=/path/to/chrome). The browser runs with a
# throw-away profile and no network features, and is killed after 60 s if it hangs.
# Exit codes: 0 screenshot written, 1 Chromium failed, 2 usage or Chromium missing.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 || ! -f "$1" ]]; then
    echo "usage: $0 REPORT.html [OUT.png] [WIDTHxHEIGHT]" >&2
    exit 2
fi
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
    echo "error: $chromium not found; install it with: apt-get install -y chromium" >&2
    exit 2
fi
report="$(realpath "$1")"
out="$(realpath -m "${2:-${report%.*}.png}")"
size="${3:-1280x2000}"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT

rm -f "$out"
timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="${size/x/,}" \
    --screenshot="$out" "file://$report" >/dev/null 2>"$profile/chromium.log" || true
if [[ ! -s "$out" ]]; then
    echo "error: Chromium wrote no screenshot; its log:" >&2
    cat "$profile/chromium.log" >&2
    exit 1
fi
echo "$out"
