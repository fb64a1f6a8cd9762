#!/usr/bin/env bash
# The demo command: builds pgkeel and runs `pgkeel demo`, the tour of the example project on a
# private, throw-away PostgreSQL server (initdb + pg_ctl in a temp dir, deleted on exit).
#
# It installs only what the demo needs, and says what before doing it: a C compiler when there is
# none, clang (pg_query's build uses libclang) and PostgreSQL's programs (initdb, pg_ctl,
# pg_dump, pg_restore). It starts no
# system service and edits no server's configuration: on Debian/Ubuntu the PostgreSQL package is
# installed without its default cluster. Everything the tests need is scripts/setup.sh's job.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "demo: cargo not found; install Rust from https://rustup.rs, then run this again" >&2
  exit 1
fi

have_pg_bin() {
  command -v initdb >/dev/null 2>&1 && return 0
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ] && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
need=()
# A C compiler and linker: Rust links with `cc`, and pg_query compiles PostgreSQL's parser.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if ! command -v clang >/dev/null 2>&1 || ! compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null; then
  need+=(clang libclang-dev)
fi
have_pg_bin || need+=(postgresql)

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "demo: missing ${need[*]}: install them with your package manager, then run this again" >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "demo: installing ${need[*]} (apt-get)"
  made_dropin=""
  dropin=/etc/postgresql-common/createcluster.d/pgkeel-demo-no-main-cluster.conf
  if [[ " ${need[*]} " == *" postgresql "* ]] && [ ! -e "$dropin" ]; then
    # The demo runs its own server: keep Debian's package from creating and starting a system
    # cluster. The drop-in is removed again once the package is in.
    echo "demo: (without Debian's default cluster: the demo starts its own server and deletes it)"
    $SUDO mkdir -p "$(dirname "$dropin")"
    echo "create_main_cluster = false" | $SUDO tee "$dropin" >/dev/null
    made_dropin=1
    trap '$SUDO rm -f "$dropin"' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$made_dropin" ]; then $SUDO rm -f "$dropin"; trap - EXIT; fi
fi

echo "demo: building pgkeel (cargo build --release; the first build takes several minutes)"
cargo build --quiet --release -p pgkeel-cli
exec target/release/pgkeel demo "$@"
