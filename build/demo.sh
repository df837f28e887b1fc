#!/usr/bin/env bash
# The main job on a built-in sample, for a newcomer: builds HvCbt if needed, then walks through a disk's life
# with the real engine, printing what each step does. Work files go to a temporary folder (kept with
# HVCBT_DEMO_KEEP=1). Run with `npm run demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ hvcbt %s\n' "${*//$work\//}"; "$hv" "$@"; }

if [ ! -d node_modules ]; then
  say "Installing npm packages (first run only)"
  npm ci --no-audit --no-fund
fi
hv="$root/build/out/hvcbt"
if [ ! -x "$hv" ] || [ -n "$(find src -newer "$hv" -name '*.ts' -print -quit)" ]; then
  say "Building the engine (dist/ and the single executable build/out/hvcbt)"
  npm run --silent build >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/hvcbt-demo.XXXXXX")"
if [ "${HVCBT_DEMO_KEEP:-}" = 1 ]; then echo "work files: $work"; else trap 'rm -rf "$work"' EXIT; fi

say "1. Create a sample disk: a 1 GiB dynamic VHDX, as Hyper-V would (32 MiB blocks, nothing allocated yet)"
run vhd create "$work/sample.vhdx" --size 1G --format vhdx --type dynamic

say "2. Show what HvCbt reads from its headers (the same facts as Hyper-V's Get-VHD)"
run vhd info "$work/sample.vhdx"

say "3. Write 4 MiB of data at 100 MiB into the virtual disk"
head -c $((4 * 1024 * 1024)) /dev/urandom >"$work/data.bin"
run vhd write "$work/sample.vhdx" --offset 100M --input "$work/data.bin"

say "4. The allocation map: only the written block holds data"
run vhd map "$work/sample.vhdx"

say "5. Read the bytes back and compare with what was written"
run vhd read "$work/sample.vhdx" --offset 100M --length 4M --output "$work/back.bin"
cmp "$work/data.bin" "$work/back.bin" && echo "identical: $(sha256sum <"$work/back.bin" | cut -c1-16)..."

say "6. Check every structure of the file (headers, region tables, BAT, log)"
run vhd check "$work/sample.vhdx"

say "Done. Try 'build/out/hvcbt --help', or in PowerShell: Import-Module ./powershell/HvCbt.psd1; Get-VhdFileInfo <file>"
