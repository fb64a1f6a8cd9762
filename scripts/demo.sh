#!/usr/bin/env bash
# The demo command: installs what is missing, builds pgshift and runs `pgshift demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --quiet --release -p pgshift-cli -- demo "$@"
