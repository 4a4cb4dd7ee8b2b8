// Debian's chromium, driven headless by playwright-core (which never downloads a browser), for
// the console's tests in a real browser. Without /usr/bin/chromium those tests are not run and
// say so; with REQUIRE_BROWSER=1 (CI) they fail instead, so that no run passes with them left out.
import { accessSync, constants } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

type Tap = {
  teardown: (fn: () => unknown) => void
  comment: (...args: unknown[]) => void
  fail: (message: string) => boolean
  test: (name: string, fn: (t: any) => Promise<void>) => Promise<unknown>
}

export const CHROMIUM = '/usr/bin/chromium'
export const BROWSER_INSTALL = 'apt-get update && apt-get install -y chromium'

// No network of its own: no updates, sync, QUIC or first-run pages, so every request it makes is the page's.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

function executable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** A fresh browser profile in a temp folder; closed and removed at teardown. */
export async function launchBrowser (t: Tap, executablePath = CHROMIUM): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), 'ts2s3-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 860 },
    timeout: 60_000
  })
  t.teardown(async () => {
    await context.close()
    await rm(profile, { recursive: true, force: true })
  })
  return context
}

/**
 * Runs `fn` as a subtest when chromium is installed. When it is not, the subtest is not run and a
 * comment says so and how to install it (a skipped test would count as passed); with
 * REQUIRE_BROWSER=1 in the environment, a missing browser fails instead.
 */
export async function withBrowser (t: Tap, name: string, fn: (t: any, executablePath: string) => Promise<void>,
  env: NodeJS.ProcessEnv = process.env, executablePath = CHROMIUM): Promise<void> {
  if (executable(executablePath)) {
    await t.test(name, async (t) => fn(t, executablePath))
    return
  }
  if (env.REQUIRE_BROWSER === '1') {
    t.fail(`${executablePath} is missing and REQUIRE_BROWSER=1: "${name}" cannot run (install it: ${BROWSER_INSTALL})`)
    return
  }
  const note = `NOT RUN (no browser at ${executablePath}): "${name}". Install Debian's chromium to run it: ${BROWSER_INSTALL}`
  t.comment(note)
  process.stderr.write(`# ${note}\n`)
}
