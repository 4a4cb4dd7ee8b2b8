// The floors of ARCHITECTURE.md, checked on the source: which folder may import which.
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, normalize, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SOURCE_DIRS = ['errors', 'schemas', 'services', 'plugins', 'routes', 'cli', 'dev', 'bench']

async function sources (dir: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { withFileTypes: true }).catch(() => [])
  const files: string[] = []
  for (const e of entries) {
    const path = join(dir, e.name)
    if (e.isDirectory() && e.name !== 'node_modules' && e.name !== 'results') files.push(...await sources(path))
    else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) files.push(path)
  }
  return files
}

/** What a file imports: our own files as repository paths, packages by name. */
async function importsOf (file: string): Promise<{ own: string[], packages: string[] }> {
  const text = await readFile(join(ROOT, file), 'utf8')
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'|import\('([^']+)'\)/gm)]
    .map((m) => m[1] ?? m[2] ?? m[3] ?? '')
  const own = specifiers.filter((s) => s.startsWith('.')).map((s) => normalize(join(dirname(file), s)).replace(/\.js$/, '.ts'))
  const packages = specifiers.filter((s) => !s.startsWith('.') && !s.startsWith('node:'))
  return { own, packages }
}

const floor = (path: string): string => path.includes('/') ? path.slice(0, path.indexOf('/')) : path

/** Which floors each floor may import (its own always). */
const ALLOWED: Record<string, string[]> = {
  errors: [],
  schemas: ['errors'],
  'config.ts': [],
  services: ['errors', 'schemas', 'config.ts'],
  plugins: ['errors', 'schemas', 'services', 'config.ts'],
  // Routes read what plugins decorate and export (the documentation's prefix); plugins never import a route.
  routes: ['errors', 'schemas', 'services', 'plugins', 'config.ts'],
  // The app plugin only assembles: it registers plugins and routes over the config.
  'app.ts': ['plugins', 'routes', 'config.ts'],
  'server.ts': ['app.ts', 'config.ts'],
  // Entries take the app whole, or the services; none registers a plugin of its own.
  cli: ['errors', 'schemas', 'services', 'config.ts', 'dev'],
  dev: ['app.ts', 'config.ts', 'errors', 'schemas', 'services'],
  bench: ['app.ts', 'config.ts', 'errors', 'schemas', 'services', 'dev']
}

t.test('every import runs down the floors: no back-edges, dev/ only for dev entries, CLIs, bench and tests', async (t) => {
  const files = ['app.ts', 'server.ts', 'config.ts', ...(await Promise.all(SOURCE_DIRS.map(sources))).flat()]
  t.ok(files.length > 40, `${files.length} source files read`)
  const wrong: string[] = []
  for (const file of files) {
    const from = floor(file)
    const { own, packages } = await importsOf(file)
    for (const target of own) {
      const to = floor(relative(ROOT, join(ROOT, target)))
      if (to !== from && !(ALLOWED[from] ?? []).includes(to)) wrong.push(`${file} imports ${target}`)
    }
    // A service sees no request or reply: it never imports the web framework.
    if (from === 'services' && packages.some((p) => p === 'fastify' || p.startsWith('@fastify/') || p === 'fastify-plugin')) wrong.push(`${file} imports fastify`)
  }
  t.same(wrong, [], 'imports outside ARCHITECTURE.md\'s floors')
})

t.test('the checker sees a back-edge', async (t) => {
  // Guards the test above against reading nothing: app.ts imports plugins, which server.ts may not.
  const { own } = await importsOf('app.ts')
  t.ok(own.some((p) => p.startsWith('plugins/')), 'app.ts imports plugins/')
  t.notOk((ALLOWED['server.ts'] ?? []).includes('plugins'), 'server.ts may not import plugins/ itself')
})

t.test('no plugin imports a route, and no service a plugin', async (t) => {
  for (const dir of ['plugins', 'services']) {
    for (const file of await sources(dir)) {
      const { own } = await importsOf(file)
      t.notOk(own.some((p) => p.startsWith('routes/') || (dir === 'services' && p.startsWith('plugins/'))), file)
    }
  }
})
