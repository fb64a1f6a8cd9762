#!/usr/bin/env node
// Writes the package.json and README.md of one platform package from the templates beside this
// file: node npm/platform/generate.js <key> <version> <out-dir>, e.g. linux-x64-gnu 0.1.0 dir.
// The binary itself is copied into <out-dir>/bin/ by scripts/package.sh.
"use strict";

const fs = require("fs");
const path = require("path");

// key -> npm's os / cpu / libc fields (libc only where npm checks it: Linux).
const PLATFORMS = {
  "linux-x64-gnu": { os: "linux", cpu: "x64", libc: "glibc", description: "Linux x64 (glibc)" },
  "linux-arm64-gnu": { os: "linux", cpu: "arm64", libc: "glibc", description: "Linux arm64 (glibc)" },
  "linux-x64-musl": { os: "linux", cpu: "x64", libc: "musl", description: "Linux x64 (musl)" },
  "linux-arm64-musl": { os: "linux", cpu: "arm64", libc: "musl", description: "Linux arm64 (musl)" },
  "darwin-x64": { os: "darwin", cpu: "x64", description: "macOS x64" },
  "darwin-arm64": { os: "darwin", cpu: "arm64", description: "macOS arm64" },
  "win32-x64": { os: "win32", cpu: "x64", description: "Windows x64" },
};

function generate(key, version, outDir) {
  const p = PLATFORMS[key];
  if (!p) throw new Error(`unknown platform ${key}; known: ${Object.keys(PLATFORMS).join(", ")}`);
  const exe = p.os === "win32" ? "pgkeel.exe" : "pgkeel";
  const fill = (text) =>
    text
      .replace(/@@KEY@@/g, key)
      .replace(/@@VERSION@@/g, version)
      .replace(/@@DESCRIPTION@@/g, p.description)
      .replace(/@@OS@@/g, p.os)
      .replace(/@@CPU@@/g, p.cpu)
      .replace(/@@LIBC@@/g, p.libc || "")
      .replace(/@@EXE@@/g, exe);
  const manifest = JSON.parse(fill(fs.readFileSync(path.join(__dirname, "package.json.tmpl"), "utf8")));
  if (!p.libc) delete manifest.libc;
  fs.mkdirSync(path.join(outDir, "bin"), { recursive: true });
  fs.writeFileSync(path.join(outDir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
  fs.writeFileSync(path.join(outDir, "README.md"), fill(fs.readFileSync(path.join(__dirname, "README.md.tmpl"), "utf8")));
  return { manifest, exe };
}

module.exports = { PLATFORMS, generate };

if (require.main === module) {
  const [key, version, outDir] = process.argv.slice(2);
  if (!key || !version || !outDir) {
    process.stderr.write("usage: node npm/platform/generate.js <key> <version> <out-dir>\n");
    process.exit(2);
  }
  try {
    const { exe } = generate(key, version, outDir);
    process.stdout.write(exe + "\n");
  } catch (err) {
    process.stderr.write(`generate.js: ${err.message}\n`);
    process.exit(1);
  }
}
