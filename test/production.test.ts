// `npm start` as production runs it: a real build, and the signal sent to npm's pid.
import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFile, cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { startUpstreams, TOKENS } from './helpers/build.js'
import { freePort } from './helpers/process.js'

// Compiling the service takes a while on a busy machine.
t.setTimeout(300_000)

// The production command on a real build: `npm start` in a folder holding the package's own
// scripts, the compiled output and the installed dependencies.
const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function built (t: Test): Promise<string> {
  await mkdir(join(ROOT, '.tap'), { recursive: true })
  const dir = await mkdtemp(join(ROOT, '.tap', 'build-'))
  t.teardown(async () => rm(dir, { recursive: true, force: true }))
  await copyFile(join(ROOT, 'package.json'), join(dir, 'package.json'))
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  // What server.ts imports, compiled as npm run build compiles it (the dev, CLI and bench entries left out).
  const tsconfig = join(dir, 'tsconfig.json')
  await writeFile(tsconfig, JSON.stringify({
    extends: join(ROOT, 'tsconfig.build.json'),
    compilerOptions: { outDir: join(dir, 'dist') },
    include: [join(ROOT, 'server.ts'), join(ROOT, 'types')]
  }))
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig], { cwd: ROOT, stdio: 'inherit' })
  // As npm run build does: the console's page beside the compiled routes.
  await cp(join(ROOT, 'console'), join(dir, 'dist', 'console'), { recursive: true })
  return dir
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function gone (pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  return !alive(pid)
}

async function refused (url: string): Promise<boolean> {
  return await request(`${url}/health`).then(async (res) => { await res.body.dump(); return false }, () => true)
}

t.test('npm start: the server is the process that gets the signal, and logs no runtime warning', async (t) => {
  const dir = await built(t)
  const { env } = await startUpstreams(t)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // No AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: production sets nothing of the kind.
  const child = spawn('npm', ['start'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const exited = once(child, 'exit')
  let serverPid: number | undefined
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
    if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, 'SIGKILL')
  })
  for (let i = 0; i < 300 && serverPid === undefined && child.exitCode === null; i++) {
    const listening = out.split('\n').find((line) => line.includes('Server listening'))
    if (listening !== undefined) serverPid = (JSON.parse(listening) as { pid: number }).pid
    else await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (serverPid === undefined) throw new Error(`the server did not start:\n${out}`)

  // A request that reaches S3, where the SDK would warn about the runtime.
  const status = await request(`${url}/api/v1/s3/status`, { headers: { authorization: `Bearer ${TOKENS.read}` } })
  t.equal(status.statusCode, 200)
  await status.body.dump()

  t.ok(child.pid, 'npm has a pid')
  child.kill('SIGTERM')
  await exited
  t.ok(await gone(serverPid), 'no server is left running after npm start gets SIGTERM')
  t.ok(await refused(url), 'the port is closed')
  t.match(out, 'closing: no new connections', 'the server itself closed gracefully')
  const major = Number(process.versions.node.split('.')[0])
  if (major >= 22) t.notMatch(out, 'NodeVersionSupportWarning', `no runtime warning on node ${process.versions.node}`)
  else t.match(out, 'NodeVersionSupportWarning', `node ${process.versions.node} is not supported, and the SDK says so`)
})
