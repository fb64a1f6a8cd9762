#!/usr/bin/env bash
# The demo command: installs what is missing, builds pgkeel and runs `pgkeel demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --quiet --release -p pgkeel-cli -- demo "$@"
