#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test against the local server,
# then the npm packages' end-to-end test (the launcher around the binary the tests just built).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
if [ $# -eq 0 ]; then
  scripts/test-npm.sh
fi
