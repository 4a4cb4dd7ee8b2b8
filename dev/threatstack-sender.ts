// A webhook sender that behaves as Threat Stack documents its own: alerts are batched by
// severity every interval (10 s), each batch is POSTed to the webhook URL, any answer but
// exactly 200 is a failure, a failed batch is resent at most three times (at the following
// intervals), then dropped. It records what it saw, so tests and `npm run dev` can show
// whether the archive kept every alert.
import { Agent, request } from 'undici'

export interface SenderOptions {
  /** The webhook URL, token included (`…/api/v1/s3/alert?token=…`). */
  url: string
  /** Batching period; 0: no timer, batches go out on `tick()` only (tests). Default 10 000. */
  intervalMs?: number
  /** Resends of a failed batch before it is dropped. Default 3. */
  maxResends?: number
  /** Deadline of one POST; no answer in time is a failure. Default 10 000. */
  timeoutMs?: number
}

export interface SenderAttempt {
  batch: number
  severity: string
  ids: string[]
  /** 0: first send; 1..maxResends: resends. */
  attempt: number
  /** The status answered, when there was an answer. */
  status?: number
  /** Why there was no answer. */
  error?: string
  ok: boolean
  at: number
  /** From a 200's body: the alerts stored with their full alert, and those whose full alert is owed. */
  archived?: number
  pending?: number
}

export interface ThreatStackSender {
  /** Queues an alert (as a webhook carries it) for the next batch of its severity. */
  raise (alert: Record<string, unknown>): void
  /** One interval's work now: sends the new batches and resends the failed ones, then resolves. */
  tick (): Promise<void>
  /** Every POST and what came back, in order. */
  readonly attempts: SenderAttempt[]
  /** Ids of alerts whose batch was answered exactly 200. */
  readonly delivered: string[]
  /** Batches given up on after the last resend. */
  readonly dropped: Array<{ batch: number, severity: string, ids: string[] }>
  /** Alerts queued or awaiting a resend. */
  readonly outstanding: number
  close (): Promise<void>
}

interface Batch { id: number, severity: string, alerts: Array<Record<string, unknown>>, sends: number }

export function startThreatStackSender (options: SenderOptions): ThreatStackSender {
  const intervalMs = options.intervalMs ?? 10_000
  const maxResends = options.maxResends ?? 3
  const timeoutMs = options.timeoutMs ?? 10_000
  const dispatcher = new Agent({ connections: 8 })
  const queued: Array<Record<string, unknown>> = []
  let retrying: Batch[] = []
  const attempts: SenderAttempt[] = []
  const delivered: string[] = []
  const dropped: ThreatStackSender['dropped'] = []
  let nextBatch = 1
  let chain: Promise<void> = Promise.resolve()

  async function send (batch: Batch): Promise<boolean> {
    const ids = batch.alerts.map((a) => String(a.id))
    const attempt: SenderAttempt = { batch: batch.id, severity: batch.severity, ids, attempt: batch.sends, ok: false, at: Date.now() }
    batch.sends++
    try {
      const res = await request(options.url, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ alerts: batch.alerts }),
        signal: AbortSignal.timeout(timeoutMs)
      })
      const text = await res.body.text()
      attempt.status = res.statusCode
      try {
        const answer = JSON.parse(text) as { archived?: unknown, pending?: unknown }
        if (Array.isArray(answer.archived)) attempt.archived = answer.archived.length
        if (Array.isArray(answer.pending)) attempt.pending = answer.pending.length
      } catch {
        // Not JSON: the status alone tells.
      }
      // Threat Stack's rule: exactly 200, not any 2xx.
      attempt.ok = res.statusCode === 200
    } catch (err) {
      attempt.error = (err as Error).name === 'TimeoutError' ? 'timeout' : String((err as { code?: unknown }).code ?? (err as Error).name)
    }
    attempts.push(attempt)
    if (attempt.ok) delivered.push(...ids)
    return attempt.ok
  }

  async function work (): Promise<void> {
    const bySeverity = new Map<string, Array<Record<string, unknown>>>()
    for (const alert of queued.splice(0)) {
      const severity = String(alert.severity ?? 'none')
      bySeverity.set(severity, [...(bySeverity.get(severity) ?? []), alert])
    }
    const fresh = [...bySeverity].map(([severity, alerts]) => ({ id: nextBatch++, severity, alerts, sends: 0 }))
    const due = [...retrying, ...fresh]
    retrying = []
    const results = await Promise.all(due.map(async (batch) => ({ batch, ok: await send(batch) })))
    for (const { batch, ok } of results) {
      if (ok) continue
      if (batch.sends > maxResends) dropped.push({ batch: batch.id, severity: batch.severity, ids: batch.alerts.map((a) => String(a.id)) })
      else retrying.push(batch)
    }
  }

  async function tick (): Promise<void> {
    // One interval at a time: a slow answer delays the next batch, as a real sender's would.
    const run = chain.then(work)
    chain = run.catch(() => {})
    await run
  }

  const timer = intervalMs > 0 ? setInterval(() => { tick().catch(() => {}) }, intervalMs) : undefined
  timer?.unref()

  return {
    raise (alert) { queued.push(alert) },
    tick,
    attempts,
    delivered,
    dropped,
    get outstanding () { return queued.length + retrying.reduce((n, b) => n + b.alerts.length, 0) },
    async close () {
      if (timer !== undefined) clearInterval(timer)
      await chain
      await dispatcher.close()
    }
  }
}
