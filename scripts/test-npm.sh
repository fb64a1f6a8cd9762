#!/usr/bin/env bash
# End-to-end test of the npm packages (scripts/package.sh): packs target/debug/pgkeel, installs the
# tarballs offline into throw-away npm projects and runs pgkeel through the Node launcher against
# the PostgreSQL on 127.0.0.1:5432 (role postgres, trust): migrate and status, exit codes,
# PGKEEL_BINARY, the signals that stop a running migration, and the error when npm skipped the
# platform package. Databases and temp dirs are removed on success and kept (and named) on failure.
# PGKEEL_NPM_TEST_BINARY=PATH tests another binary (e.g. scripts/package.sh's portable build).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PGKEEL_NPM_TEST_BINARY:-$ROOT/target/debug/pgkeel}"
DIST="$ROOT/dist/npm"
PLATFORM_PKG="@pgkeel/cli-linux-x64-gnu"
export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

PASSED=0
FAILED=0
FINISHED=0
STARTED_PIDS=()
WORK=""
DBS=()

log() { printf '\n== %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$*"; }
failc() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
die() { printf 'test-npm.sh: error: %s\n' "$*" >&2; exit 1; }
# check DESCRIPTION COMMAND...: one test, counted.
check() {
  local what="$1"; shift
  if "$@"; then pass "$what"; else failc "$what"; fi
}
contains() { grep -qF -- "$2" "$1"; }

cleanup() {
  local rc=$?
  local pid
  # The launchers this test started, and what is left of their process groups (a pgkeel that a
  # broken launcher left behind is in its group).
  for pid in "${STARTED_PIDS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ "$FINISHED" == 1 && "$FAILED" == 0 && "$rc" == 0 ]]; then
    local db
    for db in "${DBS[@]}"; do dropdb --if-exists "$db" || echo "could not drop database $db"; done
    [[ -n "$WORK" ]] && rm -rf "$WORK"
  else
    [[ ${#DBS[@]} -gt 0 ]] && echo "kept the test databases for a look: ${DBS[*]} (drop with: dropdb -h 127.0.0.1 -U postgres NAME)"
    [[ -n "$WORK" ]] && echo "kept the test directory: $WORK"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
log "prerequisites"
[[ -x "$BIN" ]] || die "$BIN is missing: build it first with 'cargo build -p pgkeel-cli'"
for tool in node npm npx psql createdb dropdb pgrep tar timeout; do
  command -v "$tool" >/dev/null || die "$tool is needed and not on PATH"
done
psql -d postgres -Atqc 'select 1' >/dev/null 2>&1 || die "no PostgreSQL answers on $PGHOST:$PGPORT for role $PGUSER"
echo "binary: $BIN ($("$BIN" --version)), node $(node --version), npm $(npm --version)"

WORK="$(mktemp -d /tmp/pgkeel-npm-test.XXXXXX)"
STAMP="$(date +%s)_$$"

# ---------------------------------------------------------------------------------------------
log "scripts/package.sh --binary $BIN"
"$ROOT/scripts/package.sh" --binary "$BIN" 2>&1 | sed 's/^/  | /'
shopt -s nullglob
mains=("$DIST"/pgkeel-[0-9]*.tgz)
platforms=("$DIST"/pgkeel-cli-linux-x64-gnu-*.tgz)
shopt -u nullglob
[[ ${#mains[@]} == 1 && ${#platforms[@]} == 1 ]] || die "expected one pgkeel-*.tgz and one pgkeel-cli-linux-x64-gnu-*.tgz in $DIST"
MAIN_TGZ="${mains[0]}"
PLATFORM_TGZ="${platforms[0]}"
VERSION="$(tar -xOzf "$MAIN_TGZ" package/package.json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).version))')"
echo "tarballs: $(basename "$MAIN_TGZ") $(basename "$PLATFORM_TGZ") (version $VERSION)"

tar -xOzf "$MAIN_TGZ" package/package.json > "$WORK/main-package.json"
tar -xOzf "$PLATFORM_TGZ" package/package.json > "$WORK/platform-package.json"
manifest_ok() {
  node - "$WORK/main-package.json" "$WORK/platform-package.json" <<'EOF'
const fs = require("fs");
const [mainFile, platformFile] = process.argv.slice(2);
const m = JSON.parse(fs.readFileSync(mainFile, "utf8"));
const p = JSON.parse(fs.readFileSync(platformFile, "utf8"));
const problems = [];
const want = ["linux-x64-gnu", "linux-arm64-gnu", "linux-x64-musl", "linux-arm64-musl", "darwin-x64", "darwin-arm64", "win32-x64"];
if (m.name !== "pgkeel") problems.push("main name");
if (!m.bin || m.bin.pgkeel !== "bin/pgkeel.js") problems.push("main bin");
if (m.scripts && Object.keys(m.scripts).length) problems.push("main has scripts: " + Object.keys(m.scripts));
if (!m.engines || m.engines.node !== ">=18") problems.push("engines.node");
if (!Array.isArray(m.files) || !m.files.includes("bin/pgkeel.js")) problems.push("files");
const opt = m.optionalDependencies || {};
for (const k of want) if (opt[`@pgkeel/cli-${k}`] !== m.version) problems.push(`optionalDependencies @pgkeel/cli-${k}`);
if (Object.keys(opt).length !== want.length) problems.push("extra optionalDependencies");
if (m.dependencies && Object.keys(m.dependencies).length) problems.push("main has dependencies");
if (p.name !== "@pgkeel/cli-linux-x64-gnu" || p.version !== m.version) problems.push("platform name/version");
if (JSON.stringify(p.os) !== '["linux"]' || JSON.stringify(p.cpu) !== '["x64"]' || JSON.stringify(p.libc) !== '["glibc"]') problems.push("platform os/cpu/libc");
if (p.preferUnplugged !== true) problems.push("preferUnplugged");
if (p.scripts) problems.push("platform has scripts");
if (problems.length) { console.error("manifest problems: " + problems.join("; ")); process.exit(1); }
EOF
}
check "package.json files: bin, engines, 7 optional platform packages at $VERSION, no scripts; platform os/cpu/libc/preferUnplugged" manifest_ok
check "the binary in the platform tarball is executable" \
  bash -c "tar -tvzf '$PLATFORM_TGZ' package/bin/pgkeel | grep -q '^-rwx'"

# ---------------------------------------------------------------------------------------------
log "npm install of both tarballs (offline) into an empty project"
APP="$WORK/app"
mkdir -p "$APP"
printf '{ "name": "pgkeel-npm-test", "version": "1.0.0", "private": true }\n' > "$APP/package.json"
(cd "$APP" && timeout 300 npm install --offline "$MAIN_TGZ" "$PLATFORM_TGZ") 2>&1 | sed 's/^/  | /'
APP_BIN="$APP/node_modules/$PLATFORM_PKG/bin/pgkeel"
[[ -x "$APP_BIN" ]] || die "npm install did not put an executable at $APP_BIN"
check "node_modules/.bin/pgkeel is the launcher" \
  test "$(readlink -f "$APP/node_modules/.bin/pgkeel")" == "$(readlink -f "$APP/node_modules/pgkeel/bin/pgkeel.js")"
check "only the linux-x64-gnu platform package was installed" \
  test "$(ls "$APP/node_modules/@pgkeel")" == "cli-linux-x64-gnu"
key="$(cd "$APP" && node -e 'console.log(require("pgkeel/bin/pgkeel.js").platformKey())')"
check "the launcher takes this machine for linux-x64-gnu (got $key)" test "$key" == linux-x64-gnu
key_fallback="$(cd "$APP" && node -e '
  Object.defineProperty(process, "report", { value: undefined });
  console.log(require("pgkeel/bin/pgkeel.js").linuxLibc())')"
check "without process.report, the /lib/ld-musl-* fallback still says glibc (got $key_fallback)" test "$key_fallback" == gnu

npx_pgkeel() { (cd "$APP" && npx --offline pgkeel "$@"); }

out="$(npx_pgkeel --version)"
check "npx pgkeel --version prints the binary's version ($out)" test "$out" == "$("$BIN" --version)"

set +e
npx_pgkeel migrate --migrations "$WORK/no-such-folder" > "$WORK/nofolder.out" 2> "$WORK/nofolder.err"; rc_launcher=$?
"$APP_BIN" migrate --migrations "$WORK/no-such-folder" > /dev/null 2>&1; rc_direct=$?
set -e
check "a failing command exits through the launcher with pgkeel's own code ($rc_launcher, direct $rc_direct)" \
  test "$rc_launcher" == "$rc_direct" -a "$rc_direct" != 0
check "pgkeel's stderr comes through the launcher" test -s "$WORK/nofolder.err"

# ---------------------------------------------------------------------------------------------
log "PGKEEL_BINARY"
FAKE="$WORK/fake-pgkeel"
cat > "$FAKE" <<'EOF'
#!/usr/bin/env bash
# Stands in for pgkeel: prints its arguments, reports the signals it gets, exits as asked.
ready="${FAKE_READY:-}"
for sig in INT TERM HUP; do trap "echo got-$sig; kill \$sleeper 2>/dev/null; exit 42" "$sig"; done
case "${1:-}" in
  exit) echo "fake pgkeel exit $2"; exit "$2" ;;
  die) trap - TERM; kill -TERM $$ ;;
  wait) sleep 30 & sleeper=$!; [[ -n "$ready" ]] && : > "$ready"; wait "$sleeper"; echo "no signal"; exit 0 ;;
  *) echo "fake pgkeel $*"; exit 0 ;;
esac
EOF
chmod +x "$FAKE"
set +e
out="$(PGKEEL_BINARY="$FAKE" npx_pgkeel exit 7 2>&1)"; rc=$?
set -e
check "PGKEEL_BINARY overrides the installed binary, and its exit code 7 comes through (rc $rc: $out)" \
  test "$out" == "fake pgkeel exit 7" -a "$rc" == 7
out="$(cd "$WORK" && PGKEEL_BINARY=fake-pgkeel node "$APP/node_modules/.bin/pgkeel" a "b c" 2>&1)"
check "a relative PGKEEL_BINARY is taken from the current directory, arguments pass as they are ($out)" \
  test "$out" == "fake pgkeel a b c"
set +e
PGKEEL_BINARY="$WORK/nothing-here" npx_pgkeel --version > /dev/null 2> "$WORK/override-missing.err"; rc=$?
set -e
check "a PGKEEL_BINARY that does not exist: exit 1 and an error naming it (rc $rc)" \
  bash -c "test $rc == 1 && grep -q 'PGKEEL_BINARY is set to $WORK/nothing-here' '$WORK/override-missing.err'"
printf '#!/bin/sh\necho never\n' > "$WORK/not-executable"
chmod 644 "$WORK/not-executable"
set +e
PGKEEL_BINARY="$WORK/not-executable" npx_pgkeel --version > /dev/null 2> "$WORK/eacces.err"; rc=$?
set -e
check "a binary that is not executable: exit 1 and an EACCES message with the fix (rc $rc: $(head -c 160 "$WORK/eacces.err"))" \
  bash -c "test $rc == 1 && grep -q 'EACCES' '$WORK/eacces.err' && grep -q 'chmod +x' '$WORK/eacces.err'"
set +e
PGKEEL_BINARY="$FAKE" node "$APP/node_modules/.bin/pgkeel" die > /dev/null 2>&1; rc=$?
set -e
check "a binary that dies of SIGTERM: the launcher dies of SIGTERM too (shell status $rc, want 143)" test "$rc" == 143

# Each signal reaches the child (the fake reports it and exits 42, which the launcher passes on).
forward_case() {
  local sig="$1" ready="$WORK/fake-ready-$1" pid rc i
  rm -f "$ready"
  set -m
  FAKE_READY="$ready" PGKEEL_BINARY="$FAKE" node "$APP/node_modules/.bin/pgkeel" wait > "$WORK/forward-$sig.out" 2>&1 &
  pid=$!
  set +m
  STARTED_PIDS+=("$pid")
  for ((i = 0; i < 100; i++)); do [[ -e "$ready" ]] && break; sleep 0.1; done
  [[ -e "$ready" ]] || { echo "  the fake binary did not start"; return 1; }
  kill "-$sig" "$pid"
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "  the launcher is still running 10 s after SIG$sig"; kill -KILL "$pid"; return 1; fi
  set +e; wait "$pid"; rc=$?; set -e
  kill -KILL -- "-$pid" 2>/dev/null || true # a child a broken launcher left behind
  echo "  SIG$sig: launcher exit status $rc, child said: $(tr '\n' ' ' < "$WORK/forward-$sig.out")"
  [[ "$rc" == 42 ]] && grep -qx "got-$sig" "$WORK/forward-$sig.out"
}
for sig in INT TERM HUP; do
  check "SIG$sig sent to the launcher is forwarded to the child, whose exit code comes back" forward_case "$sig"
done

# ---------------------------------------------------------------------------------------------
log "migrate and status through npx"
DB1="pgkeel_npm_${STAMP}"
createdb "$DB1"
DBS+=("$DB1")
cp -R "$ROOT/examples/cfi-handbook/drizzle" "$APP/drizzle"
journal_entries="$(node -e 'console.log(require(process.argv[1]).entries.length)' "$APP/drizzle/meta/_journal.json")"
export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB1"
set +e
npx_pgkeel migrate --migrations drizzle > "$WORK/migrate.out" 2>&1; rc=$?
set -e
sed 's/^/  | /' "$WORK/migrate.out"
check "npx pgkeel migrate --migrations <copy of examples/cfi-handbook/drizzle> exits 0 (rc $rc)" test "$rc" == 0
set +e
npx_pgkeel status --migrations drizzle > "$WORK/status.out" 2>&1; rc=$?
set -e
sed 's/^/  | /' "$WORK/status.out"
check "npx pgkeel status exits 0 (rc $rc)" test "$rc" == 0
set +e
npx_pgkeel status --migrations drizzle --format json > "$WORK/status.json" 2> /dev/null; rc=$?
npx_pgkeel status --migrations drizzle --check > /dev/null 2>&1; rc_check=$?
set -e
applied="$(node -e 'const s=require(process.argv[1]); console.log(s.counts.applied + "/" + s.counts.pending)' "$WORK/status.json" 2>/dev/null || echo "?")"
check "status --format json: all $journal_entries migrations applied, none pending (applied/pending $applied, rc $rc)" \
  test "$applied" == "$journal_entries/0" -a "$rc" == 0
check "status --check exits 0 (rc $rc_check)" test "$rc_check" == 0

# ---------------------------------------------------------------------------------------------
log "the example project: npm install, then its own npm run db:migrate:prod"
EXAMPLE="$WORK/cfi-handbook"
cp -R "$ROOT/examples/cfi-handbook" "$EXAMPLE"
rm -rf "$EXAMPLE/node_modules" "$EXAMPLE/package-lock.json"
# The example's devDependency is `pgkeel` from the registry; here the same packages come from the
# tarballs just built (npm records them in package.json as file: dependencies).
(cd "$EXAMPLE" && timeout 300 npm install --offline --save-dev "$MAIN_TGZ" "$PLATFORM_TGZ") 2>&1 | sed 's/^/  | /'
DB3="pgkeel_npm_example_${STAMP}"
createdb "$DB3"
DBS+=("$DB3")
set +e
(cd "$EXAMPLE" && DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB3" npm run --silent db:migrate:prod) > "$WORK/example.out" 2>&1; rc=$?
set -e
sed 's/^/  | /' "$WORK/example.out"
applied_rows="$(psql -d "$DB3" -Atc "select count(*) from __drizzle_migrations where status = 'applied'" 2>/dev/null || echo "?")"
check "npm run db:migrate:prod in the example applies its $journal_entries migrations (rc $rc, applied $applied_rows)" \
  test "$rc" == 0 -a "$applied_rows" == "$journal_entries"

# ---------------------------------------------------------------------------------------------
log "signals stop a running migration through the launcher"
DB2="pgkeel_npm_${STAMP}_sig"
createdb "$DB2"
DBS+=("$DB2")
export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB2"
mkdir -p "$APP/migrations"
cat > "$APP/migrations/0001_sleep.sql" <<'EOF'
CREATE TABLE npm_signal_marker (id integer);
SELECT pg_sleep(30);
EOF
q() { psql -d "$DB2" -Atqc "$1"; }
sleepers() { q "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle' and query ilike '%pg_sleep%'"; }

# The ledger pgkeel uses for this folder, from pgkeel itself.
npx_pgkeel status --migrations migrations --format json > "$WORK/sig-status.json" 2> /dev/null || true
LEDGER="$(node -e 'console.log(require(process.argv[1]).ledger || "")' "$WORK/sig-status.json" 2>/dev/null || true)"
[[ -n "$LEDGER" ]] || die "pgkeel status --format json named no ledger table (see $WORK/sig-status.json)"
echo "ledger (from pgkeel status --format json): $LEDGER"
applied_rows() {
  if [[ "$(q "select to_regclass('${LEDGER//\'/\'\'}') is not null")" == t ]]; then
    q "select count(*) from $LEDGER where status = 'applied'"
  else
    echo 0
  fi
}

# signal_case SIGNAL pid|group ALLOWED...: run the blocking migration through the launcher, send
# SIGNAL once pg_sleep runs (to the launcher's pid, or to its process group as Ctrl-C in a terminal
# does), then check how it ended.
signal_case() {
  local sig="$1" how="$2"; shift 2
  local allowed=("$@") pid rc i t0 child ok=0 elapsed lingering status_state
  set -m
  node "$APP/node_modules/.bin/pgkeel" migrate --migrations "$APP/migrations" > "$WORK/sig-$sig-$how.out" 2>&1 &
  pid=$!
  set +m
  STARTED_PIDS+=("$pid")
  for ((i = 0; i < 200; i++)); do [[ "$(sleepers)" -ge 1 ]] && break; sleep 0.1; done
  if [[ "$(sleepers)" -lt 1 ]]; then
    echo "  the migration never reached pg_sleep; its output:"; sed 's/^/  | /' "$WORK/sig-$sig-$how.out"
    kill -KILL -- "-$pid" 2>/dev/null || true
    return 1
  fi
  child="$(pgrep -f "$APP_BIN" | tr '\n' ' ')"
  echo "  launcher pid $pid, pgkeel pid(s) ${child:-none}; pg_sleep is running"
  sleep 2
  t0=$SECONDS
  if [[ "$how" == group ]]; then kill "-$sig" -- "-$pid"; else kill "-$sig" "$pid"; fi
  for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  elapsed=$((SECONDS - t0))
  if kill -0 "$pid" 2>/dev/null; then
    echo "  the launcher is still running 20 s after SIG$sig: killing it"
    kill -KILL -- "-$pid" 2>/dev/null || true
    set +e; wait "$pid"; set -e
    return 1
  fi
  set +e; wait "$pid"; rc=$?; set -e
  local what="exit code $rc"
  ((rc > 128)) && what="exit status $rc (exit code $rc, or death by SIG$(kill -l $((rc - 128)) 2>/dev/null))"
  [[ "$rc" == 130 ]] && what="exit status 130 (pgkeel's 'interrupted' code, passed on)"
  echo "  SIG$sig to the launcher's $how: it ended after ~${elapsed} s with $what"
  sed 's/^/  | /' "$WORK/sig-$sig-$how.out"
  local good=1
  [[ " ${allowed[*]} " == *" $rc "* ]] || { echo "  unexpected exit status $rc (allowed: ${allowed[*]})"; good=0; }
  local left
  left="$(pgrep -f "$APP_BIN" | tr '\n' ' ' || true)"
  if [[ -n "$left" ]]; then
    echo "  a pgkeel process is still running: $(pgrep -af "$APP_BIN")"; good=0
    kill -KILL $left 2>/dev/null || true
  fi
  # pgkeel cancels the statement before it exits; give the server a moment to end the backend.
  lingering=""
  for ((i = 0; i < 50; i++)); do lingering="$(sleepers)"; [[ "$lingering" == 0 ]] && break; sleep 0.1; done
  if [[ "$lingering" != 0 ]]; then
    echo "  $lingering backend(s) still running pg_sleep 5 s after the launcher ended:"
    q "select pid, state, now() - query_start, left(query, 60) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query ilike '%pg_sleep%'" | sed 's/^/  | /'
    q "select pg_cancel_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query ilike '%pg_sleep%'" > /dev/null
    good=0
  fi
  local rows; rows="$(applied_rows)"
  [[ "$rows" == 0 ]] || { echo "  the ledger has $rows applied row(s)"; good=0; }
  [[ "$(q "select to_regclass('public.npm_signal_marker') is null")" == t ]] || { echo "  the migration's table exists: it was not rolled back"; good=0; }
  npx_pgkeel status --migrations migrations --format json > "$WORK/sig-status.json" 2> /dev/null || true
  status_state="$(node -e 'const s=require(process.argv[1]); console.log(s.migrations.map(m => m.id + "=" + m.state).join(","))' "$WORK/sig-status.json" 2>/dev/null || echo "?")"
  echo "  afterwards: applied ledger rows $rows, pg_sleep backends ${lingering:-0}, pgkeel status: $status_state"
  [[ "$status_state" == "0001_sleep=pending" || "$status_state" == "0001_sleep=failed" ]] || { echo "  status does not show 0001_sleep pending"; good=0; }
  [[ "$good" == 1 ]]
}

check "SIGTERM to the launcher's pid stops the migration: launcher ends within 20 s (130/143), no pgkeel left, nothing applied, no pg_sleep backend" \
  signal_case TERM pid 130 143
check "SIGINT to the launcher's pid: the same" \
  signal_case INT pid 130
check "SIGINT to the launcher's process group (Ctrl-C in a terminal): the same" \
  signal_case INT group 130

# ---------------------------------------------------------------------------------------------
log "no platform package: npm install --omit=optional of the main tarball only"
APP2="$WORK/app-omit"
mkdir -p "$APP2"
printf '{ "name": "pgkeel-npm-test-omit", "version": "1.0.0", "private": true }\n' > "$APP2/package.json"
(cd "$APP2" && timeout 300 npm install --offline --omit=optional "$MAIN_TGZ") 2>&1 | sed 's/^/  | /'
check "no @pgkeel package was installed" test ! -e "$APP2/node_modules/@pgkeel"
set +e
(cd "$APP2" && npx --offline pgkeel --version) > "$WORK/missing.out" 2> "$WORK/missing.err"; rc=$?
set -e
sed 's/^/  | /' "$WORK/missing.err"
check "the launcher exits 1 (rc $rc)" test "$rc" == 1
missing_message_ok() {
  local want
  for want in "$PLATFORM_PKG/bin/pgkeel" "optional dependency" "--omit=optional" "--no-optional" \
      "package-lock.json made on another OS" "npm install" "PGKEEL_BINARY" "cargo install pgkeel-cli"; do
    contains "$WORK/missing.err" "$want" || { echo "  the message lacks: $want"; return 1; }
  done
  [[ ! -s "$WORK/missing.out" ]] || { echo "  it wrote to stdout"; return 1; }
}
check "the error names $PLATFORM_PKG, why npm skipped it and the fixes (reinstall, PGKEEL_BINARY, cargo install)" missing_message_ok
out="$(cd "$APP2" && PGKEEL_BINARY="$BIN" npx --offline pgkeel --version 2>&1)"
check "PGKEEL_BINARY makes that install work ($out)" test "$out" == "$("$BIN" --version)"

APP3="$WORK/app-main-only"
mkdir -p "$APP3"
printf '{ "name": "pgkeel-npm-test-main-only", "version": "1.0.0", "private": true }\n' > "$APP3/package.json"
set +e
(cd "$APP3" && timeout 300 npm install --offline "$MAIN_TGZ") > "$WORK/main-only-install.out" 2>&1; rc_install=$?
(cd "$APP3" && npx --offline pgkeel --version) > /dev/null 2> "$WORK/main-only.err"; rc=$?
set -e
check "installing the main tarball alone succeeds though no platform package can be had (rc $rc_install), and the launcher then says what is missing (rc $rc)" \
  bash -c "test $rc_install == 0 && test $rc == 1 && grep -qF '$PLATFORM_PKG' '$WORK/main-only.err'"

# ---------------------------------------------------------------------------------------------
FINISHED=1
echo
echo "$PASSED passed, $FAILED failed"
[[ "$FAILED" == 0 ]]
