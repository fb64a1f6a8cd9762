#!/usr/bin/env bash
# Builds the npm packages into dist/npm/: the `pgkeel` launcher package and the platform package
# holding the native binary (@pgkeel/cli-linux-x64-gnu by default).
#
#   scripts/package.sh [--binary PATH] [--platform KEY] [--version V] [--require-portable]
#
# Without --binary it builds a release binary that runs on glibc 2.17 and newer with cargo-zigbuild
# (installed from crates.io, and zig from PyPI's `ziglang`, when missing), niced and in its own
# target dir (target/portable) so that it never waits on, or blocks, another cargo build. If
# zigbuild cannot work here it falls back to a plain `cargo build --release`, loudly: that binary
# needs the build machine's glibc (--require-portable, or PGKEEL_REQUIRE_PORTABLE=1, fails instead).
# --binary PATH packages that binary as it is (the tests use target/debug/pgkeel).
# --platform KEY (with --binary) names the platform package: linux-x64-gnu (default),
# linux-arm64-gnu, linux-x64-musl, linux-arm64-musl, darwin-x64, darwin-arm64, win32-x64.
# The version is [workspace.package] version in Cargo.toml unless --version is given.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/dist/npm"
STAGE="$OUT/.stage"
MAX_GLIBC=2.17
ZIG_TARGET=x86_64-unknown-linux-gnu
BINARY=""
PLATFORM=""
VERSION=""
REQUIRE_PORTABLE="${PGKEEL_REQUIRE_PORTABLE:-0}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'package.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) [[ $# -ge 2 ]] || die "--binary needs a path"; BINARY="$2"; shift 2 ;;
    --binary=*) BINARY="${1#*=}"; shift ;;
    --platform) [[ $# -ge 2 ]] || die "--platform needs a key"; PLATFORM="$2"; shift 2 ;;
    --platform=*) PLATFORM="${1#*=}"; shift ;;
    --version) [[ $# -ge 2 ]] || die "--version needs a version"; VERSION="$2"; shift 2 ;;
    --version=*) VERSION="${1#*=}"; shift ;;
    --require-portable) REQUIRE_PORTABLE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

command -v node >/dev/null || die "node is needed (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is needed (apt-get install npm)"

if [[ -z "$VERSION" ]]; then
  VERSION="$(awk '
    /^\[/ { section = $0; next }
    section == "[workspace.package]" && $1 == "version" {
      gsub(/^[^"]*"|".*$/, ""); print; exit
    }' "$ROOT/Cargo.toml")"
  [[ -n "$VERSION" ]] || die "no [workspace.package] version in $ROOT/Cargo.toml; pass --version"
fi
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "not a semver version: $VERSION"

if [[ -n "$PLATFORM" && -z "$BINARY" ]]; then
  die "--platform only goes with --binary (the build makes linux-x64-gnu)"
fi
PLATFORM="${PLATFORM:-linux-x64-gnu}"

# The highest GLIBC_x.y symbol version a binary needs, or "none" (static, musl, not ELF).
glibc_required() {
  local syms
  if command -v objdump >/dev/null; then
    syms="$(objdump -T "$1" 2>/dev/null || true)"
  elif command -v readelf >/dev/null; then
    syms="$(readelf -V --wide "$1" 2>/dev/null || true)"
  else
    die "objdump or readelf is needed to check the glibc requirement (apt-get install binutils)"
  fi
  local max
  max="$(grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' <<<"$syms" | sed 's/^GLIBC_//' | sort -uV | tail -n 1 || true)"
  echo "${max:-none}"
}

# a <= b for dotted versions.
version_le() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$1" ]]; }

ensure_zig() {
  if command -v zig >/dev/null && zig version >/dev/null 2>&1; then
    say "zig $(zig version) (PATH)"; return 0
  fi
  if python3 -m ziglang version >/dev/null 2>&1; then
    say "zig $(python3 -m ziglang version) (PyPI ziglang)"; return 0
  fi
  command -v python3 >/dev/null || { say "no zig and no python3 to install PyPI's ziglang"; return 1; }
  say "installing zig from PyPI (ziglang)"
  python3 -m pip install --quiet ziglang >&2 || return 1
  python3 -m ziglang version >/dev/null 2>&1
}

ensure_zigbuild() {
  if command -v cargo-zigbuild >/dev/null; then
    say "$(cargo-zigbuild --version 2>/dev/null || echo cargo-zigbuild)"; return 0
  fi
  say "installing cargo-zigbuild from crates.io"
  (cd /tmp && nice -n 19 cargo install --locked cargo-zigbuild) >&2 || return 1
  command -v cargo-zigbuild >/dev/null
}

BUILT_PORTABLE=0
build_release() {
  export CARGO_TARGET_DIR="$ROOT/target/portable"
  local start=$SECONDS why=""
  if ! ensure_zig; then
    why="zig could not be found or installed (pip install ziglang)"
  elif ! ensure_zigbuild; then
    why="cargo-zigbuild could not be found or installed (cargo install cargo-zigbuild)"
  else
    if ! rustup target list --installed 2>/dev/null | grep -qx "$ZIG_TARGET"; then
      rustup target add "$ZIG_TARGET" >&2 || true
    fi
    say "building: cargo zigbuild --release -p pgkeel-cli --target $ZIG_TARGET.$MAX_GLIBC (nice 19, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    if (cd "$ROOT" && nice -n 19 cargo zigbuild --release --locked -p pgkeel-cli --target "$ZIG_TARGET.$MAX_GLIBC") >&2; then
      BINARY="$CARGO_TARGET_DIR/$ZIG_TARGET/release/pgkeel"
      BUILT_PORTABLE=1
      say "portable build took $((SECONDS - start)) s"
      return 0
    fi
    why="cargo zigbuild failed (its output is above)"
  fi
  [[ "$REQUIRE_PORTABLE" == 1 ]] && die "no portable build: $why (and --require-portable / PGKEEL_REQUIRE_PORTABLE=1 is set)"
  cat >&2 <<EOF

################################################################################
##  WARNING: $why.
##  Falling back to a plain 'cargo build --release'. That binary needs the glibc
##  of THIS machine or newer: it is NOT PORTABLE and must not be published.
################################################################################

EOF
  start=$SECONDS
  (cd "$ROOT" && nice -n 19 cargo build --release --locked -p pgkeel-cli) >&2 || die "cargo build --release failed"
  BINARY="$CARGO_TARGET_DIR/release/pgkeel"
  say "non-portable build took $((SECONDS - start)) s"
}

if [[ -z "$BINARY" ]]; then
  build_release
fi
[[ -f "$BINARY" ]] || die "no binary at $BINARY"
[[ -x "$BINARY" ]] || die "$BINARY is not executable"
BINARY="$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")"

# The binary must be of the package's CPU (a Linux one is checked; others are taken as given).
if [[ "$PLATFORM" == linux-* ]] && command -v readelf >/dev/null; then
  machine="$(readelf -h "$BINARY" 2>/dev/null | sed -n 's/^ *Machine: *//p')"
  case "$PLATFORM" in
    linux-x64-*) [[ "$machine" == *X86-64* ]] || die "$BINARY is not an x86-64 ELF binary (Machine: ${machine:-not ELF})" ;;
    linux-arm64-*) [[ "$machine" == *AArch64* ]] || die "$BINARY is not an AArch64 ELF binary (Machine: ${machine:-not ELF})" ;;
  esac
fi

if [[ "$PLATFORM" == linux-*-gnu ]]; then
  need="$(glibc_required "$BINARY")"
  say "highest GLIBC symbol version needed by $BINARY: GLIBC_$need"
  if [[ "$need" != none ]] && ! version_le "$need" "$MAX_GLIBC"; then
    objdump -T "$BINARY" 2>/dev/null | grep -F "GLIBC_$need" | awk '{print "    " $NF}' | sort -u | head -n 10 >&2 || true
    if [[ "$BUILT_PORTABLE" == 1 ]]; then
      die "the zigbuild binary needs GLIBC_$need, more than the $MAX_GLIBC it was built for"
    fi
    say "warning: this binary needs glibc $need or newer, not $MAX_GLIBC (fine for a local test; not for publishing)"
  fi
fi

say "packaging pgkeel $VERSION with @pgkeel/cli-$PLATFORM from $BINARY"
mkdir -p "$OUT"
rm -rf "$STAGE"
rm -f "$OUT"/pgkeel-*.tgz
mkdir -p "$STAGE"

# The launcher package, with the version set in it and in every optional dependency.
cp -R "$ROOT/npm/pgkeel" "$STAGE/pgkeel"
cp "$ROOT/LICENSE-MIT" "$ROOT/LICENSE-APACHE" "$STAGE/pgkeel/"
node - "$STAGE/pgkeel/package.json" "$VERSION" <<'EOF'
const fs = require("fs");
const [file, version] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
manifest.version = version;
for (const name of Object.keys(manifest.optionalDependencies || {})) manifest.optionalDependencies[name] = version;
const scripts = manifest.scripts || {};
for (const hook of ["preinstall", "install", "postinstall", "prepare"]) {
  if (scripts[hook]) { console.error(`package.json must not have a ${hook} script`); process.exit(1); }
}
fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
EOF
chmod 755 "$STAGE/pgkeel/bin/pgkeel.js"

# The platform package: package.json and README from npm/platform, then the binary.
PDIR="$STAGE/cli-$PLATFORM"
exe="$(node "$ROOT/npm/platform/generate.js" "$PLATFORM" "$VERSION" "$PDIR")"
install -m 755 "$BINARY" "$PDIR/bin/$exe"
cp "$ROOT/LICENSE-MIT" "$ROOT/LICENSE-APACHE" "$PDIR/"

pack() {
  local dir="$1" file
  file="$(cd "$dir" && npm pack --silent --pack-destination "$OUT" | tail -n 1)"
  [[ -f "$OUT/$file" ]] || die "npm pack in $dir made no tarball"
  echo "$OUT/$file"
}
say "npm pack (the platform package holds a $(du -h "$BINARY" | cut -f1) binary)"
MAIN_TGZ="$(pack "$STAGE/pgkeel")"
PLATFORM_TGZ="$(pack "$PDIR")"

# The binary must be executable inside the tarball (npm keeps the mode it packed).
mode="$(tar -tvzf "$PLATFORM_TGZ" "package/bin/$exe" | awk '{print $1}')"
[[ "$mode" == -rwx* ]] || die "package/bin/$exe in $PLATFORM_TGZ is not executable ($mode)"

for f in "$MAIN_TGZ" "$PLATFORM_TGZ"; do
  printf '%s  %s  %s\n' "$(du -h "$f" | cut -f1)" "$(sha256sum "$f" | cut -c1-16)" "$f"
done
