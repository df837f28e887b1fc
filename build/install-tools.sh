#!/usr/bin/env bash
# Install the tools HvCbt's tests drive: the Debian peers (qemu-img, libvhdi, libnbd, nbdkit, Samba clients,
# tshark, etcd, rsync, fuse3) and, project-locally under .tools/, PowerShell 7 (a .NET tool) and Pester.
#
# Idempotent: each step checks first and does nothing when its tool is already there (apt-get update runs only
# when a package is missing). CI runs it as root on a fresh Debian bookworm machine that has the .NET 10 SDK;
# developers run it too (without root it uses sudo for the apt part, or skips it with --no-apt).
#
#   build/install-tools.sh [--no-apt] [--no-powershell]
#
# Environment: HVCBT_TOOLS_DIR (default <repo>/.tools), PWSH_VERSION, PESTER_VERSION (defaults pinned below).
# Result: .tools/pwsh/pwsh and .tools/Pester/<version>/Pester.psd1.
set -euo pipefail

# Pins. PowerShell 7.6.x targets net10.0 (runs on the .NET 10 SDK/runtime); Pester 5.7.1 is the stable 5.x line
# whose API test/pester/*.Tests.ps1 is written against.
PWSH_VERSION="${PWSH_VERSION:-7.6.9}"
PESTER_VERSION="${PESTER_VERSION:-5.7.1}"

APT_PACKAGES=(qemu-utils libvhdi-utils libnbd-bin nbdkit smbclient python3-samba tshark etcd-server etcd-client
  rsync fuse3)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${HVCBT_TOOLS_DIR:-$root/.tools}"
do_apt=1
do_powershell=1
for arg in "$@"; do
  case "$arg" in
    --no-apt) do_apt=0 ;;
    --no-powershell) do_powershell=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-tools: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "install-tools: $*" >&2; }
die() { echo "install-tools: error: $*" >&2; exit 1; }

# --- Debian peers -----------------------------------------------------------------------------------------------
install_apt() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != "installed" ]; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "Debian packages: all ${#APT_PACKAGES[@]} present"
    return
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing Debian packages (${missing[*]}) and not root; run as root or with --no-apt"
    sudo=(sudo)
  fi
  log "Debian packages: installing ${missing[*]}"
  # tshark's postinst asks whether non-root users may capture; answer "no" so the install never waits on a prompt.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | "${sudo[@]}" debconf-set-selections
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- PowerShell 7 as a .NET tool ---------------------------------------------------------------------------------
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 POWERSHELL_TELEMETRY_OPTOUT=1

install_pwsh() {
  local dir="$tools/pwsh" have=""
  if [ -x "$dir/pwsh" ]; then
    have="$("$dir/pwsh" -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()' 2>/dev/null || true)"
  fi
  if [ "$have" = "$PWSH_VERSION" ]; then
    log "PowerShell $PWSH_VERSION: present at $dir/pwsh"
    return
  fi
  if [ -n "$have" ] || [ -e "$dir/pwsh" ]; then
    log "PowerShell: replacing '${have:-broken install}' with $PWSH_VERSION"
    dotnet tool uninstall --tool-path "$dir" PowerShell >/dev/null 2>&1 || rm -rf "$dir"
  fi
  log "PowerShell $PWSH_VERSION: dotnet tool install --tool-path $dir"
  dotnet tool install --tool-path "$dir" PowerShell --version "$PWSH_VERSION" >&2
  have="$("$dir/pwsh" -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()')" ||
    die "$dir/pwsh was installed but does not run"
  [ "$have" = "$PWSH_VERSION" ] || die "$dir/pwsh reports version '$have', expected $PWSH_VERSION"
}

# --- Pester (NuGet package 'Pester': a Chocolatey-style package whose tools/ folder is the module) -------------
install_pester() {
  local dest="$tools/Pester/$PESTER_VERSION"
  if [ -f "$dest/Pester.psd1" ]; then
    log "Pester $PESTER_VERSION: present at $dest"
    return
  fi
  local work
  work="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  # A throwaway project whose only job is PackageDownload: NuGet fetches and verifies the package (signature,
  # hash) into a private packages folder, without touching the user's global cache.
  cat >"$work/pester-download.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Pester" Version="[$PESTER_VERSION]" /></ItemGroup>
</Project>
EOF
  log "Pester $PESTER_VERSION: dotnet restore (PackageDownload)"
  dotnet restore "$work/pester-download.csproj" --packages "$work/packages" >&2
  local src="$work/packages/pester/$PESTER_VERSION/tools"
  [ -f "$src/Pester.psd1" ] || die "NuGet package Pester $PESTER_VERSION has no tools/Pester.psd1"
  mkdir -p "$tools/Pester"
  rm -rf "$dest.partial"
  cp -R "$src" "$dest.partial"
  mv "$dest.partial" "$dest"
  log "Pester $PESTER_VERSION: installed at $dest"
}

if [ "$do_apt" -eq 1 ]; then install_apt; fi
if [ "$do_powershell" -eq 1 ] && ! command -v dotnet >/dev/null; then
  # Not fatal: the tap suite does not need .NET, and test/pester/run.sh reports the missing pwsh as a failure.
  log "warning: the .NET SDK (dotnet) is not installed, so PowerShell and Pester were not installed;" \
    "the Pester suite will fail until it is (Debian has no package: use Microsoft's packages or dotnet-install.sh)"
  do_powershell=0
fi
if [ "$do_powershell" -eq 1 ]; then
  mkdir -p "$tools"
  install_pwsh
  install_pester
  # Final check: the pinned Pester imports into the pinned PowerShell.
  got="$("$tools/pwsh/pwsh" -NoProfile -NonInteractive -Command \
    "(Import-Module '$tools/Pester/$PESTER_VERSION/Pester.psd1' -PassThru).Version.ToString()")" ||
    die "Pester $PESTER_VERSION does not import into $tools/pwsh/pwsh"
  log "ready: $tools/pwsh/pwsh (PowerShell $PWSH_VERSION) with Pester $got"
fi
