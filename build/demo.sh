#!/usr/bin/env bash
# The main job on a built-in sample, for a newcomer: builds HvCbt if needed, then walks a virtual disk through
# change tracking and full, incremental and differential backups, restores every backup and proves each restore
# is exact. Uses only hvcbt itself (plus sha256sum/head). Work files go to a temporary folder, kept with
# HVCBT_DEMO_KEEP=1. Run with `npm run demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
run() { printf '$ hvcbt %s\n' "${*//$work\//}"; "$hv" "$@"; }
quiet() { "$hv" "$@" >/dev/null; }
# write N MiB of random bytes at each offset (MiB) given, through HvCbt (so tracking records them)
scribble() {
  local mib=$1; shift
  for off in "$@"; do
    head -c $((mib * 1024 * 1024)) /dev/urandom >"$work/chunk.bin"
    quiet vhd write "$disk" --offset "${off}M" --input "$work/chunk.bin"
  done
}
# SHA-256 of the whole virtual disk as a guest would see it
image_hash() { "$hv" vhd read "$1" --output /dev/stdout 2>/dev/null | sha256sum | cut -c1-64; }

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
disk="$work/web01.vhdx"
repo="$work/backups"

say "1. A sample VM disk: a 2 GiB dynamic VHDX (as Hyper-V makes them), with 96 MiB of 'data' written into it"
run vhd create "$disk" --size 2G --format vhdx --type dynamic
scribble 32 0 700 1500
run vhd info "$disk"

say "2. Turn on changed-block tracking: from now on every write is recorded (crash-safe, in $(basename "$disk").hvcbt/)"
run tracking enable "$disk"

say "3. First backup: full. It reads only the allocated blocks, not the empty 1.9 GiB"
run backup create "$disk" --repo "$repo"
h_full=$(image_hash "$disk")

say "4. The VM changes about 1 % of its disk (20 MiB in 20 places)"
scribble 1 3 90 160 220 310 400 480 520 610 777 850 990 1111 1222 1333 1444 1555 1666 1777 1888
note "tracking knows exactly which ranges changed, without reading the disk:"
run tracking status "$disk"

say "5. Second backup: incremental. It reads and stores only the changed chunks"
run backup create "$disk" --repo "$repo"
h_incr=$(image_hash "$disk")

say "6. More changes, then a differential backup: everything changed since the full one"
scribble 2 50 1000 1900
run backup create "$disk" --repo "$repo" --mode differential
h_diff=$(image_hash "$disk")

say "7. The repository: three backups, each complete on its own (no chain to replay or merge)"
run backup list --repo "$repo"

say "8. Restore every backup to a new disk and compare it with the disk as it was at that point"
ok=1
i=0
for want in "$h_full" "$h_incr" "$h_diff"; do
  id=$("$hv" backup list --repo "$repo" --json | node -e 'const l=JSON.parse(require("fs").readFileSync(0,"utf8"));const a=Array.isArray(l)?l:l.backups;console.log(a['"$i"'].id)')
  out="$work/restored-$i.vhdx"
  quiet backup restore --repo "$repo" --id "$id" --output "$out"
  got=$(image_hash "$out")
  if [ "$got" = "$want" ]; then note "backup $id -> $(basename "$out"): identical (sha256 ${got:0:16}...)"
  else note "backup $id -> $(basename "$out"): DIFFERENT (want ${want:0:16}, got ${got:0:16})"; ok=0; fi
  i=$((i + 1))
done

say "9. Verify the repository: every chunk present and matching its hash, every image stream rebuilt"
run backup verify --repo "$repo" --deep

if [ "$ok" = 1 ]; then
  say "Done: three backups, all restored exactly. Next: build/out/hvcbt --help, or in PowerShell:"
  note "Import-Module ./powershell/HvCbt.psd1; Get-ChildItem *.vhdx | Backup-Vhd -Repository D:\\Backups"
else
  say "A restore differed from its source: please report this"
  exit 1
fi
