// What `npm run dev` shows when Threat Stack is the simulator: alerts raised at Threat Stack (the
// simulator's list and GET /alerts/<id> serve them) and sent to the service by the sender, as the
// real one does, a small batch per interval. Each batch's answer is printed, so the developer
// sees alerts arrive, get their full alert, and show up in coverage.
import { randomBytes } from 'node:crypto'
import type { ThreatStackSimulator } from './threatstack-simulator.js'
import { startThreatStackSender, type SenderAttempt } from './threatstack-sender.js'

export interface AlertStreamOptions {
  simulator: ThreatStackSimulator
  /** The webhook URL, token included. */
  url: string
  /** Between two batches; the real sender's period is 10 s. */
  intervalMs: number
  /** Alerts raised per interval: 1 to `maxPerBatch`, at random. Default 3. */
  maxPerBatch?: number
  print: (text: string) => void
}

export interface AlertStream {
  close (): Promise<void>
}

const TITLES = [
  'User login from an unexpected address',
  'Package installed outside of a deployment',
  'Outbound connection to an unusual port',
  'Sudo used by a service account'
]

/** A MongoDB ObjectId, as Threat Stack's ids are: the creation second, then random bytes. */
function objectId (createdMs: number): string {
  return Math.floor(createdMs / 1000).toString(16).padStart(8, '0') + randomBytes(8).toString('hex')
}

const describe = (a: SenderAttempt): string =>
  `${a.attempt === 0 ? 'batch' : `resend ${a.attempt} of batch`} ${a.batch} (severity ${a.severity}, ${a.ids.length} alert${a.ids.length === 1 ? '' : 's'}: ${a.ids.join(', ')}) ` +
  (a.ok ? `answered 200${a.archived !== undefined ? ` (archived ${a.archived}, full alert pending ${a.pending ?? 0})` : ''}` : `failed (${a.status !== undefined ? `answered ${a.status}` : a.error ?? 'no answer'})`)

export function startAlertStream (options: AlertStreamOptions): AlertStream {
  const { simulator, print } = options
  const maxPerBatch = options.maxPerBatch ?? 3
  // The stream drives the sender's interval itself, raising the alerts just before each tick.
  const sender = startThreatStackSender({ url: options.url, intervalMs: 0 })
  let reported = 0
  let reportedDropped = 0
  let closed = false
  let raised = 0

  async function interval (): Promise<void> {
    const count = 1 + Math.floor(Math.random() * maxPerBatch)
    for (let i = 0; i < count; i++) {
      const createdMs = Date.now()
      const id = objectId(createdMs)
      const severity = 1 + Math.floor(Math.random() * 3)
      const title = `${TITLES[raised++ % TITLES.length] as string} (simulated)`
      simulator.raiseAlert({
        id,
        title,
        dataSource: 'host',
        createdAt: new Date(createdMs).toISOString(),
        isDismissed: false,
        dismissedAt: null,
        severity,
        agentId: 'agent-dev1',
        rulesetId: 'ruleset-sim',
        ruleId: 'rule-1',
        hostname: 'sim-host-1',
        details: { user: 'root', address: '203.0.113.7' }
      })
      // What the webhook carries: the sender's fields, not the full alert.
      sender.raise({ id, created_at: String(createdMs), severity: String(severity), title })
    }
    await sender.tick()
    for (const attempt of sender.attempts.slice(reported)) print(`dev: sender: ${describe(attempt)}`)
    reported = sender.attempts.length
    for (const d of sender.dropped.slice(reportedDropped)) print(`dev: sender: batch ${d.batch} dropped after its last resend (${d.ids.join(', ')}); the sweeper's backfill archives it from the list`)
    reportedDropped = sender.dropped.length
  }

  let running: Promise<void> = Promise.resolve()
  const timer = setInterval(() => {
    if (closed) return
    running = running.then(interval).catch((err: unknown) => { print(`dev: sender: ${(err as Error).message}`) })
  }, options.intervalMs)
  timer.unref()

  return {
    async close () {
      closed = true
      clearInterval(timer)
      await running
      await sender.close()
    }
  }
}
