/**
 * Syntax check of every PowerShell file in the repository (the module and the Pester tests).
 *
 * With pwsh (build/install-tools.sh puts it in .tools/pwsh; CI always has it) the check is PowerShell's own parser,
 * [System.Management.Automation.Language.Parser]::ParseFile, which is authoritative. Without pwsh (a developer
 * machine without .NET) it falls back to tree-sitter-powershell: a grammar that catches unbalanced braces, broken
 * strings and the like, but also rejects a few valid constructs (numeric multipliers such as 64KB in expressions,
 * unquoted `--opt=value` arguments to native commands, comma lists of Env: paths). Never a substitute for running
 * the cmdlets: test/pester does that.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
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

t.test('tree-sitter-powershell fallback', { skip: pwsh ? 'pwsh present: its own parser is authoritative' : false }, async t => {
  const { Parser, Language } = await import('web-tree-sitter')
  await Parser.init()
  const wasm = join(root, 'node_modules/tree-sitter-powershell/tree-sitter-powershell.wasm')
  const parser = new Parser()
  parser.setLanguage(await Language.load(wasm))
  for (const f of files) {
    const tree = parser.parse(readFileSync(f, 'utf8'))
    t.ok(tree, `${relative(root, f)} parsed`)
    const problems: string[] = []
    const visit = (n: NonNullable<typeof tree>['rootNode']) => {
      if (n.isError || n.isMissing) {
        problems.push(`${n.startPosition.row + 1}:${n.startPosition.column + 1} ${n.isMissing ? `missing ${n.type}` : 'syntax error'}`)
      } else if (n.hasError) {
        for (const c of n.children) if (c) visit(c)
      }
    }
    visit(tree!.rootNode)
    t.same(problems, [], `${relative(root, f)} (if pwsh accepts it, see the grammar's known gaps at the top of this file)`)
  }
})

t.test('the fallback grammar flags a real syntax error', async t => {
  // Keeps the fallback honest even where pwsh is installed: it must reject an unclosed block and a broken string.
  const { Parser, Language } = await import('web-tree-sitter')
  await Parser.init()
  const parser = new Parser()
  parser.setLanguage(await Language.load(join(root, 'node_modules/tree-sitter-powershell/tree-sitter-powershell.wasm')))
  const valid = 'function Get-X {\n    param([string]$a)\n    "ok $a"\n}\n'
  t.equal(parser.parse(valid)!.rootNode.hasError, false, 'valid function')
  t.equal(parser.parse(valid.slice(0, -2))!.rootNode.hasError, true, 'unclosed function body')
  t.equal(parser.parse('if ($x) {\n    "unterminated\n}\n')!.rootNode.hasError, true, 'unterminated string')
})
