#!/usr/bin/env bash
# Install the headless browser the browser tests drive: Debian's Chromium at /usr/bin/chromium.
# Idempotent: does nothing when it is already there. Never runs `playwright install` (the
# Python package `playwright` carries its own driver; the browser comes from apt).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

CMD="apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core"
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium is missing at $CHROMIUM; install it as root:" >&2
    echo "    sudo sh -c '$CMD'" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium fonts-dejavu-core
"$CHROMIUM" --version
