// `npm run dev`: runs dev/server.ts and restarts it when a source file changes. It stops, with
// the server's exit code 1, when the server says it cannot start (a bad variable, a busy port);
// a crash of edited code instead waits for the next change. SIGINT and SIGTERM are passed on,
// and the watcher exits once the server has closed.
import { fork, type ChildProcess } from 'node:child_process'
import { watch, type FSWatcher } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SOURCES = ['errors', 'schemas', 'plugins', 'routes', 'services', 'dev', 'types']
const ENTRY = fileURLToPath(new URL('./server.ts', import.meta.url))
/** What dev/server.ts sends before it exits on a bad variable or a busy port. */
const FATAL = 'dev:fatal'

let child: ChildProcess | undefined
let stopping = false
let restartTimer: NodeJS.Timeout | undefined
const watchers: FSWatcher[] = []

function start (): void {
  const current = fork(ENTRY, process.argv.slice(2), {
    execArgv: ['--import', 'tsx', '--openssl-legacy-provider'],
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    // Its own process group: a terminal's Ctrl-C reaches the watcher only, which passes it on
    // once (a second signal would cut the server's graceful close short).
    detached: true
  })
  child = current
  current.on('message', (message) => {
    if (message === FATAL) stop(1)
  })
  current.on('exit', (code, signal) => {
    if (child === current) child = undefined
    if (stopping) {
      finish()
      return
    }
    if (code !== 0 || signal !== null) process.stdout.write(`dev: the server stopped (${signal ?? `exit code ${String(code)}`}); waiting for a change to restart\n`)
  })
}

let exitCode = 0
function finish (): void {
  for (const w of watchers) w.close()
  if (restartTimer !== undefined) clearTimeout(restartTimer)
  process.exit(exitCode)
}

function stop (code: number, signal: NodeJS.Signals = 'SIGTERM'): void {
  exitCode = code
  if (stopping) return
  stopping = true
  if (child === undefined || child.exitCode !== null) finish()
  else child.kill(signal)
}

function restart (): void {
  if (stopping) return
  const running = child
  if (running === undefined) {
    start()
    return
  }
  process.stdout.write('dev: a source file changed, restarting\n')
  running.once('exit', () => { if (!stopping) start() })
  running.kill('SIGTERM')
}

const changed = (file: string | null): void => {
  if (file !== null && !file.endsWith('.ts')) return
  if (restartTimer !== undefined) clearTimeout(restartTimer)
  restartTimer = setTimeout(restart, 150)
}
watchers.push(watch(ROOT, (_event, file) => changed(file)))
for (const dir of SOURCES) watchers.push(watch(fileURLToPath(new URL(`../${dir}/`, import.meta.url)), { recursive: true }, (_event, file) => changed(file)))

process.on('SIGINT', () => stop(0, 'SIGINT'))
process.on('SIGTERM', () => stop(0, 'SIGTERM'))
start()
