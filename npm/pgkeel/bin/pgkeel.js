#!/usr/bin/env node
// The `pgkeel` command of the npm package: finds the native pgkeel binary that npm installed as
// one of the optional @pgkeel/cli-<platform> packages (or PGKEEL_BINARY), runs it with the same
// arguments and standard streams, passes on the signals that stop it, and exits as it exited.
// CommonJS, no dependencies, Node 18+.
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

// <process.platform>-<process.arch>[-<libc>] -> the npm package that holds that build.
const PACKAGES = {
  "linux-x64-gnu": "@pgkeel/cli-linux-x64-gnu",
  "linux-arm64-gnu": "@pgkeel/cli-linux-arm64-gnu",
  "linux-x64-musl": "@pgkeel/cli-linux-x64-musl",
  "linux-arm64-musl": "@pgkeel/cli-linux-arm64-musl",
  "darwin-x64": "@pgkeel/cli-darwin-x64",
  "darwin-arm64": "@pgkeel/cli-darwin-arm64",
  "win32-x64": "@pgkeel/cli-win32-x64",
};

// The signals a user or a supervisor stops pgkeel with. pgkeel itself cancels the running
// statement and rolls back on SIGINT/SIGTERM; the launcher only has to stay alive and pass them on.
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"];

function fail(message) {
  process.stderr.write(message.replace(/\n?$/, "\n"));
  process.exit(1);
}

function ownVersion() {
  try {
    return require(path.join(__dirname, "..", "package.json")).version;
  } catch (_) {
    return undefined;
  }
}

// glibc or musl. Node's diagnostic report names the glibc it runs on (header.glibcVersionRuntime)
// and has no such field on musl; where no report can be had, musl's dynamic loader tells.
function linuxLibc() {
  try {
    if (process.report && typeof process.report.getReport === "function") {
      // The network part of the report can be slow (DNS) and is not needed.
      try {
        process.report.excludeNetwork = true;
      } catch (_) {
        /* older Node: no such setting */
      }
      const report = process.report.getReport();
      const header = report && (typeof report === "string" ? JSON.parse(report).header : report.header);
      if (header) return header.glibcVersionRuntime ? "gnu" : "musl";
    }
  } catch (_) {
    /* fall through to the file system */
  }
  try {
    if (fs.readdirSync("/lib").some((name) => name.startsWith("ld-musl-"))) return "musl";
  } catch (_) {
    /* no /lib: assume glibc */
  }
  return "gnu";
}

function platformKey(platform = process.platform, arch = process.arch, libc) {
  if (platform === "linux") return `${platform}-${arch}-${libc || linuxLibc()}`;
  return `${platform}-${arch}`;
}

function binaryName(platform = process.platform) {
  return platform === "win32" ? "pgkeel.exe" : "pgkeel";
}

function describe(key) {
  const [platform, arch, libc] = key.split("-");
  return `${platform} ${arch}${libc ? ` (${libc === "gnu" ? "glibc" : "musl"})` : ""}`;
}

function tryResolve(request) {
  try {
    return require.resolve(request);
  } catch (_) {
    return null;
  }
}

// The binary to run and where it came from, or exits 1 with what to do about it.
function resolveBinary() {
  const override = process.env.PGKEEL_BINARY;
  if (override) {
    const bin = path.resolve(override);
    if (!fs.existsSync(bin)) {
      fail(`pgkeel: PGKEEL_BINARY is set to ${override}, but there is no file there.\n` +
        "Point it at a pgkeel binary, or unset it to use the one installed with the npm package.");
    }
    return { bin, source: "PGKEEL_BINARY" };
  }

  const key = platformKey();
  const exe = binaryName();
  const pkg = PACKAGES[key];
  const version = ownVersion();
  if (!pkg) {
    fail(
      `pgkeel: there is no prebuilt pgkeel binary for ${describe(key)} (${key}).\n` +
      `Prebuilt binaries exist for: ${Object.keys(PACKAGES).join(", ")}.\n` +
      "Build one from source with `cargo install pgkeel-cli` (needs Rust and libclang) and either\n" +
      "put it on PATH or set PGKEEL_BINARY=/path/to/pgkeel for this package to run it.",
    );
  }

  const bin = tryResolve(`${pkg}/bin/${exe}`);
  if (bin) return { bin, source: pkg };

  // A package for the other libc is a common mix-up (a lockfile or node_modules from another
  // Linux, e.g. copied from Debian into Alpine): say so.
  let other = "";
  if (process.platform === "linux") {
    const otherKey = key.endsWith("-musl") ? key.replace(/-musl$/, "-gnu") : key.replace(/-gnu$/, "-musl");
    if (PACKAGES[otherKey] && tryResolve(`${PACKAGES[otherKey]}/bin/${exe}`)) {
      other = `${PACKAGES[otherKey]} is installed, but this system uses ${key.endsWith("-musl") ? "musl" : "glibc"}:\n` +
        "node_modules (or its lockfile) was probably made on another Linux.\n";
    }
  }
  const at = version ? `@${version}` : "";
  fail(
    `pgkeel: the pgkeel binary for ${describe(key)} was not found.\n` +
    `Looked for ${pkg}/bin/${exe}.\n` +
    `${pkg} is an optional dependency of pgkeel that npm installs only on\n` +
    "the platform it is built for, and skips when optional dependencies are skipped:\n" +
    "`npm install --omit=optional` (or `--no-optional`, or `omit=optional` in .npmrc), or a\n" +
    "package-lock.json made on another OS or CPU that left it out.\n" +
    other + "\n" +
    "To fix it, any one of:\n" +
    "  - reinstall with optional dependencies: rm -rf node_modules && npm install\n" +
    "    (if that does not help, delete package-lock.json too; it was made elsewhere)\n" +
    `  - install it directly: npm install ${pkg}${at}\n` +
    "  - point this launcher at a pgkeel binary: PGKEEL_BINARY=/path/to/pgkeel\n" +
    "  - build it from source: cargo install pgkeel-cli",
  );
}

function spawnError(err, bin, source) {
  const from = source === "PGKEEL_BINARY" ? " (from PGKEEL_BINARY)" : ` (from ${source})`;
  let why;
  switch (err.code) {
    case "ENOENT":
      why = "the file or its dynamic loader does not exist (a glibc build on a musl system,\n" +
        "or a binary for another OS, fails this way)";
      break;
    case "EACCES":
      why = `it is not executable: chmod +x ${bin}, and check that its file system is not mounted noexec`;
      break;
    case "ENOEXEC":
      why = "it is not a program this system can run (built for another OS or CPU?)";
      break;
    default:
      why = err.message;
  }
  fail(`pgkeel: cannot run ${bin}${from}: ${err.code || "error"}: ${why}`);
}

function run() {
  const { bin, source } = resolveBinary();
  const child = childProcess.spawn(bin, process.argv.slice(2), { stdio: "inherit" });

  const handlers = new Map();
  for (const signal of FORWARDED) {
    const handler = () => {
      // On Windows Ctrl-C reaches the child through the console by itself, and kill() there
      // would terminate it without letting it roll back: only keep Node alive.
      if (process.platform === "win32" && signal === "SIGINT") return;
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          child.kill(signal);
        } catch (_) {
          /* it exited meanwhile */
        }
      }
    };
    handlers.set(signal, handler);
    try {
      process.on(signal, handler);
    } catch (_) {
      /* a signal this platform does not have */
    }
  }
  const removeHandlers = () => {
    for (const [signal, handler] of handlers) process.removeListener(signal, handler);
  };

  child.on("error", (err) => {
    if (child.pid === undefined) {
      removeHandlers();
      spawnError(err, bin, source);
    }
    // Otherwise a failed kill(): the child is still running, and its exit ends this process.
  });

  child.on("exit", (code, signal) => {
    removeHandlers();
    if (signal) {
      // Die of the same signal, so the shell (or CI) sees what the child saw. Where Node keeps
      // that signal ignored (SIGPIPE) or handles it itself, fall back to the shell's 128 + n.
      setTimeout(() => process.exit(128 + (os.constants.signals[signal] || 1)), 200);
      try {
        process.kill(process.pid, signal);
      } catch (_) {
        /* fall back to the timer */
      }
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

module.exports = { PACKAGES, platformKey, binaryName, linuxLibc };

if (require.main === module) run();
