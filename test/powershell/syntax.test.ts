/**
 * Syntax check of every PowerShell file in the repository (the module and the Pester tests).
 *
 * The check is PowerShell's own parser, [System.Management.Automation.Language.Parser]::ParseFile, in the pwsh
 * that build/install-tools.sh puts in .tools/pwsh (NuGet has it, so CI always does). It catches a broken file
 * even where Pester would only report the one test file that failed to load. tree-sitter-powershell was tried as a
 * fallback for machines without .NET and dropped: it rejects valid PowerShell (64KB literals, unquoted
 * `--opt=value` arguments) and pwsh is always installable here.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

function powershellFiles(dir: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...powershellFiles(p))
    else if (/\.ps(m|d)?1$/i.test(e.name)) out.push(p)
  }
  return out.sort()
}

function findPwsh(): string | undefined {
  const local = join(root, '.tools/pwsh/pwsh')
  if (existsSync(local)) return local
  const r = spawnSync('sh', ['-c', 'command -v pwsh'], { encoding: 'utf8' })
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined
}

const files = [...powershellFiles(join(root, 'powershell')), ...powershellFiles(join(root, 'test'))]
const pwsh = findPwsh()

t.test('there are PowerShell files to check', async t => {
  t.ok(files.some(f => f.endsWith('HvCbt.psm1')), 'the module is among them')
  t.ok(files.some(f => f.endsWith('.Tests.ps1')), 'Pester tests are among them')
})

t.test('PowerShell parser (pwsh)', { skip: pwsh ? false : 'pwsh not installed (build/install-tools.sh)' }, async t => {
  // One pwsh for all files: prints `path<TAB>line:col message` per error, then `checked N`.
  const script = `
    $n = 0
    foreach ($f in $input) {
      $tokens = $null; $errors = $null
      $null = [System.Management.Automation.Language.Parser]::ParseFile($f, [ref]$tokens, [ref]$errors)
      foreach ($e in $errors) { "$f\`t$($e.Extent.StartLineNumber):$($e.Extent.StartColumnNumber) $($e.Message)" }
      $n++
    }
    "checked $n"`
  const r = spawnSync(pwsh!, ['-NoProfile', '-NonInteractive', '-Command', script], {
    input: files.join('\n') + '\n',
    encoding: 'utf8',
    env: { ...process.env, POWERSHELL_TELEMETRY_OPTOUT: '1', NO_COLOR: '1' },
    timeout: 60_000,
  })
  t.equal(r.status, 0, `pwsh exited cleanly: ${r.stderr}`)
  const lines = r.stdout.split('\n').map(l => l.trim()).filter(Boolean)
  t.equal(lines.at(-1), `checked ${files.length}`, 'every file was parsed')
  const errors = lines.filter(l => l.includes('\t'))
  for (const f of files) {
    const mine = errors.filter(l => l.startsWith(f + '\t')).map(l => l.split('\t')[1])
    t.same(mine, [], relative(root, f))
  }
})
