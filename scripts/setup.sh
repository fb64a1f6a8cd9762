#!/usr/bin/env bash
# Installs what building and testing pgkeel needs on Debian/Ubuntu and makes sure a PostgreSQL
# server answers on 127.0.0.1:5432 for the role `postgres` without a password (tests create and
# drop their own databases there). Safe to run again: it only does what is missing. It changes
# the authentication of a server only when it created that server in this run; an existing
# server that asks for a password is left alone unless PGKEEL_SETUP_TRUST_LOCAL=1 says otherwise.
# (`scripts/demo.sh` needs none of this: it installs only the build tools and PostgreSQL's programs.)
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# monitor: promtool (prometheus) checks /metrics, chromium renders the dashboard, wrk benches.
for pkg in libclang-dev clang postgresql postgresql-contrib pgbouncer prometheus chromium wrk; do
  have_pkg "$pkg" || need+=("$pkg")
done
# The drizzle-orm compatibility tests run the real drizzle-orm package with Node.js.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
fresh_cluster=""
[[ " ${need[*]} " == *" postgresql "* ]] && fresh_cluster=1
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi

# PostgreSQL: start the cluster if it is installed but down, create one if there is none.
if command -v pg_lsclusters >/dev/null 2>&1; then
  if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    echo "setup: creating PostgreSQL $ver cluster main"
    $SUDO pg_createcluster "$ver" main >/dev/null
    fresh_cluster=1
  fi
  pg_lsclusters -h | while read -r ver name port status _; do
    if [ "$status" != "online" ]; then
      echo "setup: starting PostgreSQL $ver/$name"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
    fi
  done
fi

for i in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian cluster asks for a password on TCP: let local test connections in, but only
  # on a cluster this run created, or when asked to.
  if [ -z "$fresh_cluster" ] && [ "${PGKEEL_SETUP_TRUST_LOCAL:-}" != 1 ]; then
    echo "setup: the PostgreSQL server on 127.0.0.1:5432 refuses the role postgres without a password." >&2
    echo "setup: the tests need trust authentication for 127.0.0.1 on a test server; setup does not" >&2
    echo "setup: change an existing server's pg_hba.conf by itself. Either point the tests at a" >&2
    echo "setup: throw-away server, or run again with PGKEEL_SETUP_TRUST_LOCAL=1 to let setup prepend" >&2
    echo "setup: 'host all all 127.0.0.1/32 trust' to this server's pg_hba.conf and reload it." >&2
    exit 1
  fi
  hba=$($SUDO -u postgres psql -Atqc 'show hba_file' 2>/dev/null || su postgres -c "psql -Atqc 'show hba_file'")
  echo "setup: allowing trust auth for 127.0.0.1 in $hba (test machine only)"
  $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(pg_lsclusters -h | awk 'NR==1{print $1}')" main reload
  sleep 1
fi
# The other runners whose ledgers pgkeel adopts (tests/other_runners.rs): dbmate, the Supabase CLI
# and Prisma from npm, sqlx-cli from crates.io (a 6-7 minute build on 2 cores, once per machine).
runners="$(cd "$(dirname "$0")/.." && pwd)/crates/pgkeel/tests/other-runners"
if [ ! -x "$runners/node_modules/.bin/dbmate" ] || [ ! -x "$runners/node_modules/.bin/supabase" ] \
   || [ ! -x "$runners/node_modules/.bin/prisma" ]; then
  # `npm install`, not `npm ci`: dbmate's other platforms' optional packages are not in the lock.
  echo "setup: installing dbmate, supabase and prisma into $runners (npm install)"
  (cd "$runners" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
sqlx_version=0.9.0
if ! "${CARGO_HOME:-$HOME/.cargo}/bin/sqlx" --version 2>/dev/null | grep -qx "sqlx-cli $sqlx_version"; then
  echo "setup: building sqlx-cli $sqlx_version (cargo install, several minutes)"
  cargo install sqlx-cli --version "=$sqlx_version" --no-default-features --features postgres,rustls \
    --locked --quiet
fi
# Backups in buckets are tested against a real S3-compatible server: moto's, from PyPI
# (tests/support starts `python3 -m moto.server` on a free port and stops it).
moto_version=5.2.1
if ! python3 -m pip show moto 2>/dev/null | grep -qx "Version: $moto_version"; then
  echo "setup: installing moto[server] $moto_version (S3-compatible server for the backup tests)"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi

psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null \
  || { echo "setup: PostgreSQL does not answer on 127.0.0.1:5432 as postgres" >&2; exit 1; }
echo "setup: ok ($(psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'show server_version'))"
