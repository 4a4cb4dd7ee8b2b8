// Runs server.ts as a real process, the way `npm start` runs its build.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
export { freePort } from '../../dev/net.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface ServerProcess {
  child: ChildProcess
  url: string
  stdout: () => string
  stderr: () => string
  /** Resolves with the exit code. */
  exited: Promise<number | null>
}

/** Spawns the server with exactly `env` (plus PATH); resolves once it listens, or once it exits. */
export async function startServer (env: Record<string, string>, options: { waitForListen?: boolean } = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const port = env.PORT ?? '3000'
  if (options.waitForListen ?? true) {
    // Ready when /health answers, whatever the log level prints.
    const deadline = Date.now() + 30_000
    while (child.exitCode === null && Date.now() < deadline) {
      const healthy = await request(`http://127.0.0.1:${port}/health`).then(async (res) => {
        await res.body.dump()
        return res.statusCode === 200
      }, () => false)
      if (healthy) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return { child, url: `http://127.0.0.1:${port}`, stdout: () => out, stderr: () => err, exited }
}
