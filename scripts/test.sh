#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test against the local server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
