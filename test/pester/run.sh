#!/usr/bin/env bash
# Runs the Pester suite with the project-local PowerShell; arguments go to run.ps1 (e.g. -Engine dist/main.js).
# Last line of output: `pester: N passed, N failed, N skipped`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pwsh="$root/.tools/pwsh/pwsh"
if [ ! -x "$pwsh" ]; then
  pwsh="$(command -v pwsh || true)"
fi
if [ -z "$pwsh" ]; then
  echo "PowerShell is not installed: run build/install-tools.sh"
  echo "pester: 0 passed, 1 failed, 0 skipped"
  exit 1
fi
export POWERSHELL_TELEMETRY_OPTOUT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
exec "$pwsh" -NoProfile -NonInteractive -File "$root/test/pester/run.ps1" "$@"
