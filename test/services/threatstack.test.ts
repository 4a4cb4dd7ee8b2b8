// The Threat Stack client against the simulator (a real HTTP server on loopback): both ways of
// authenticating, and every failure mode classified into the errors of SPEC "Errors".
import t, { type Test } from 'tap'
import type { Config } from '../../config.js'
import {
  DEFAULT_RETRY_AFTER_SECONDS, ThreatStackAPIError, ThreatStackError, ThreatStackRequestError, WebhookDataError
} from '../../errors/index.js'
import {
  checkThreatStack, closeThreatStackClient, createThreatStackClient, fetchAlert, getObject, retryAfterSeconds,
  type ThreatStackClient
} from '../../services/threatstack.js'
import {
  FAILURE_MODES, simulatedAlert, startThreatStackSimulator, type SimulatorOptions, type ThreatStackSimulator
} from '../../dev/threatstack-simulator.js'
import { SECRETS, NO_RETRY } from '../helpers/build.js'
import type { RecordedRequest } from '../../dev/threatstack-simulator.js'
import { assertNoLeak } from '../helpers/leaks.js'

type ErrorClass<T> = abstract new (...args: never[]) => T

const ID = '587c0159a907346eccb84004'
const HAWK = { kind: 'hawk', userId: SECRETS.userId, organizationId: SECRETS.organizationId } as const

async function simulator (t: Test, options: Partial<SimulatorOptions> = {}): Promise<ThreatStackSimulator> {
  const sim = await startThreatStackSimulator({ apiKey: SECRETS.apiKey, ...options })
  t.teardown(async () => sim.close())
  return sim
}

/** The recorded requests without their arrival times. */
const requestsOf = (sim: ThreatStackSimulator): Array<Omit<RecordedRequest, 'at'>> =>
  sim.requests.map((r) => ({ method: r.method, path: r.path, authorized: r.authorized }))

function client (t: Test, sim: ThreatStackSimulator, overrides: Partial<Config['threatstack']> = {}): ThreatStackClient {
  const cfg: Config['threatstack'] = {
    baseUrl: sim.url,
    apiKey: SECRETS.apiKey,
    auth: HAWK,
    timeoutMs: 2000,
    connectTimeoutMs: 1000,
    maxConnections: 4,
    maxResponseBytes: 64 * 1024,
    retry: NO_RETRY,
    ...overrides
  }
  const c = createThreatStackClient(cfg)
  t.teardown(async () => closeThreatStackClient(c))
  return c
}

/** The rejection of `promise`, checked to be an instance of `Class`. */
async function rejection<T> (t: Test, promise: Promise<unknown>, Class: ErrorClass<T>): Promise<T> {
  let error: unknown
  try {
    await promise
  } catch (err) {
    error = err
  }
  t.ok(error instanceof Class, `rejects with ${Class.name} (got ${String(error)})`)
  if (!(error instanceof Class)) throw new Error(`expected ${Class.name}, got ${String(error)}`)
  return error
}

/** What SPEC "Errors" says a message may never carry. */
function assertFixedMessage (t: Test, err: Error, sim: ThreatStackSimulator): void {
  t.ok(err instanceof ThreatStackError, 'is a ThreatStackError')
  t.ok(err.cause !== undefined && err.cause !== null, 'keeps the original error as cause')
  const message = err.message
  for (const banned of ['127.0.0.1', String(sim.port), 'ECONN', 'UND_ERR', 'nginx', SECRETS.apiKey, SECRETS.userId, SECRETS.organizationId]) {
    t.notOk(message.includes(banned), `message has no ${banned}`)
  }
  t.notMatch(message, /html/i, 'message has no html')
  t.match(message, /^(Failure to communicate with Threat Stack|Threat Stack )/, 'a fixed sentence')
  assertNoLeak(t, message, [String(sim.port)])
}

function causeCode (err: Error): unknown {
  return (err.cause as { code?: unknown } | undefined)?.code
}

t.test('Hawk: the request is authenticated and the alert returned', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const c = client(t, sim)

  t.same(await fetchAlert(c, ID), simulatedAlert(ID))
  sim.setAlert(ID, { id: ID, title: 'stored', extra: [1, 2] })
  t.same(await fetchAlert(c, ID), { id: ID, title: 'stored', extra: [1, 2] })

  t.same(requestsOf(sim), [
    { method: 'GET', path: `/v2/alerts/${ID}`, authorized: true },
    { method: 'GET', path: `/v2/alerts/${ID}`, authorized: true }
  ])

  const header = c.authorization(`${sim.url}/alerts/${ID}`, 'GET')
  t.match(header, /^Hawk id="/, 'a Hawk header')
  t.ok(header.includes(`id="${SECRETS.userId}"`), 'the user id is the Hawk id')
  t.ok(header.includes(`ext="${SECRETS.organizationId}"`), 'the organization id is the ext')
  t.notOk(header.includes(SECRETS.apiKey), 'the key itself is never sent')
})

t.test('Hawk: checkThreatStack GETs /alerts?count=1 authenticated', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const c = client(t, sim)
  await checkThreatStack(c, 1000)
  t.same(requestsOf(sim), [{ method: 'GET', path: '/v2/alerts?count=1', authorized: true }])
})

t.test('Hawk: a wrong key, user or organization is a ThreatStackAPIError with status 401', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const cases: Array<[string, Partial<Config['threatstack']>]> = [
    ['wrong key', { apiKey: 'not-the-key' }],
    ['wrong user', { auth: { ...HAWK, userId: 'someone-else' } }],
    ['wrong organization', { auth: { ...HAWK, organizationId: 'other-org' } }],
    ['legacy header against Hawk', { auth: { kind: 'legacy' } }]
  ]
  for (const [what, overrides] of cases) {
    const err = await rejection(t, fetchAlert(client(t, sim, overrides), ID), ThreatStackAPIError)
    t.equal(err.upstreamStatus, 401, `${what}: upstream 401`)
    t.equal(err.statusCode, 502, `${what}: 502`)
    assertFixedMessage(t, err, sim)
  }
  t.equal(sim.requests.length, cases.length)
  t.ok(sim.requests.every((r) => !r.authorized), 'none was authorized')
})

t.test('legacy: `Authorization: <key>` is accepted, a wrong key gets 401', async (t) => {
  const sim = await simulator(t)
  const c = client(t, sim, { auth: { kind: 'legacy' } })
  t.equal(c.authorization(`${sim.url}/alerts/${ID}`, 'GET'), SECRETS.apiKey, 'the header is the key itself')

  t.same(await fetchAlert(c, ID), simulatedAlert(ID))
  await checkThreatStack(c, 1000)
  t.same(requestsOf(sim), [
    { method: 'GET', path: `/v2/alerts/${ID}`, authorized: true },
    { method: 'GET', path: '/v2/alerts?count=1', authorized: true }
  ])

  const wrong = await rejection(t, fetchAlert(client(t, sim, { auth: { kind: 'legacy' }, apiKey: 'wrong-key' }), ID), ThreatStackAPIError)
  t.equal(wrong.upstreamStatus, 401)
  t.equal(wrong.statusCode, 502)
  assertFixedMessage(t, wrong, sim)

  // A Hawk header is not the key: the legacy API refuses it.
  const hawk = await rejection(t, fetchAlert(client(t, sim), ID), ThreatStackAPIError)
  t.equal(hawk.upstreamStatus, 401)
  t.equal(sim.requests.filter((r) => r.authorized).length, 2)
})

t.test('no URL is built from an id that breaks the id rule', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const c = client(t, sim)
  for (const id of ['a b/c?d', '../../alerts', '..%2Fx', 'abc', 'x'.repeat(129), '', 'abcd\u0000', 12345678, null, ['abcd']]) {
    const err = await rejection(t, fetchAlert(c, id as string), WebhookDataError)
    t.equal(err.statusCode, 400, `refused: ${JSON.stringify(id).slice(0, 20)}`)
    t.same(err.details, ['/id must be 4 to 128 characters of A-Z, a-z, 0-9, _ and -'])
  }
  t.equal(sim.requests.length, 0, 'nothing reached Threat Stack')
  const alert = await fetchAlert(c, 'A_-z09')
  t.equal(alert.id, 'A_-z09')
  t.equal(sim.requests[0]?.path, '/v2/alerts/A_-z09')
  t.equal(sim.requests[0]?.authorized, true)
})

t.test('a JSON 404 for an unknown path is a ThreatStackAPIError', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const err = await rejection(t, getObject(client(t, sim), '/nowhere'), ThreatStackAPIError)
  t.equal(err.upstreamStatus, 404)
  t.equal(err.statusCode, 502)
  assertFixedMessage(t, err, sim)
})

t.test('every failure mode of the simulator', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const c = client(t, sim, { timeoutMs: 400, maxResponseBytes: 64 * 1024 })
  const tested = new Set<string>()

  /** After a failure of `times` requests, the next one is answered normally. */
  async function backToNormal (t: Test): Promise<void> {
    const before = sim.requests.length
    t.same(await fetchAlert(c, ID), simulatedAlert(ID), 'the next request is answered normally')
    t.equal(sim.requests.length, before + 1)
  }

  t.test('refused → ThreatStackRequestError 502; heal() listens again', async (t) => {
    tested.add('refused')
    await sim.failWith('refused')
    for (let i = 0; i < 2; i++) {
      const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
      t.equal(err.statusCode, 502)
      t.equal(err.upstreamStatus, undefined, 'no upstream status: nothing answered')
      t.equal(causeCode(err), 'ECONNREFUSED', 'the cause is the refused connection')
      assertFixedMessage(t, err, sim)
    }
    t.equal(sim.requests.length, 0, 'nothing reached the simulator')
    await sim.heal()
    await backToNormal(t)
  })

  t.test('hang → ThreatStackRequestError 504', async (t) => {
    tested.add('hang')
    await sim.failWith('hang', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.statusCode, 504)
    t.equal(err.message, 'Threat Stack did not answer in time')
    const cause = err.cause as { name?: string, code?: string }
    t.ok(cause.name === 'TimeoutError' || /^UND_ERR_.*TIMEOUT$/.test(cause.code ?? ''), `the cause is a timeout (${String(cause.name)})`)
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('hang → 504 also for checkThreatStack with its own timeout', async (t) => {
    await sim.failWith('hang', 1)
    const err = await rejection(t, checkThreatStack(c, 300), ThreatStackRequestError)
    t.equal(err.statusCode, 504)
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('reset → ThreatStackRequestError 502', async (t) => {
    tested.add('reset')
    await sim.failWith('reset', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.statusCode, 502)
    t.equal(err.upstreamStatus, undefined)
    t.equal(causeCode(err), 'UND_ERR_SOCKET', 'the cause is the socket error')
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('html-503 → ThreatStackRequestError 502 with upstream status 503', async (t) => {
    tested.add('html-503')
    await sim.failWith('html-503', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.statusCode, 502)
    t.equal(err.upstreamStatus, 503)
    t.equal(err.message, 'Failure to communicate with Threat Stack (status 503)')
    t.match(String((err.cause as Error).message), /nginx/, 'the page is in the cause, for the log')
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  for (const status of [401, 404, 500] as const) {
    t.test(`json-${status} → ThreatStackAPIError 502 with upstream status ${status}`, async (t) => {
      tested.add(`json-${status}`)
      await sim.failWith(`json-${status}`, 1)
      const err = await rejection(t, fetchAlert(c, ID), ThreatStackAPIError)
      t.equal(err.statusCode, 502)
      t.equal(err.upstreamStatus, status)
      t.equal(err.retryAfterSeconds, undefined)
      t.equal(err.message, `Failure to communicate with Threat Stack (status ${status})`)
      assertFixedMessage(t, err, sim)
      await backToNormal(t)
    })
  }

  t.test('json-429 → ThreatStackAPIError 503 with the Retry-After of Threat Stack', async (t) => {
    tested.add('json-429')
    await sim.failWith('json-429', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackAPIError)
    t.equal(err.statusCode, 503)
    t.equal(err.upstreamStatus, 429)
    t.equal(err.retryAfterSeconds, 7)
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('invalid-json → ThreatStackRequestError 502', async (t) => {
    tested.add('invalid-json')
    await sim.failWith('invalid-json', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.statusCode, 502)
    t.ok((err.cause as Error).cause instanceof SyntaxError, 'the parse error is in the chain')
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('deep-json → ThreatStackRequestError 502: refused as it is read, never later as it is stored', async (t) => {
    tested.add('deep-json')
    await sim.failWith('deep-json', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.statusCode, 502)
    t.equal(err.upstreamStatus, 200)
    t.equal(err.message, 'Failure to communicate with Threat Stack (status 200)')
    t.match(String(((err.cause as Error).cause as Error).message), /nested deeper than 32 levels/, 'the reason is in the chain, for the log')
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('an answer nested just within the limit is an object like any other', async (t) => {
    const deep = { id: ID, nested: JSON.parse('['.repeat(31) + ']'.repeat(31)) as unknown }
    sim.setAlert(ID, deep)
    t.same(await fetchAlert(c, ID), deep, '32 levels with the outer object')
    sim.setAlert(ID, { id: ID, nested: JSON.parse('['.repeat(32) + ']'.repeat(32)) as unknown })
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.upstreamStatus, 200, '33 levels are refused')
    sim.setAlert(ID, simulatedAlert(ID))
  })

  t.test('oversized → ThreatStackRequestError 502', async (t) => {
    tested.add('oversized')
    await sim.failWith('oversized', 1)
    const err = await rejection(t, fetchAlert(c, ID), ThreatStackRequestError)
    t.equal(err.statusCode, 502)
    t.equal(causeCode(err), 'UND_ERR_RES_EXCEEDED_MAX_SIZE', 'the cause is the size cap')
    assertFixedMessage(t, err, sim)
    await backToNormal(t)
  })

  t.test('failWith(mode, times) fails exactly `times` requests', async (t) => {
    await sim.failWith('json-500', 3)
    for (let i = 0; i < 3; i++) {
      const err = await rejection(t, fetchAlert(c, ID), ThreatStackAPIError)
      t.equal(err.upstreamStatus, 500, `failure ${i + 1} of 3`)
    }
    await backToNormal(t)
    await backToNormal(t)
  })

  t.test('failWith(mode) without times fails until heal()', async (t) => {
    await sim.failWith('json-500')
    for (let i = 0; i < 4; i++) await rejection(t, fetchAlert(c, ID), ThreatStackAPIError)
    await sim.heal()
    await backToNormal(t)
  })

  t.test('every mode of FAILURE_MODES was covered', async (t) => {
    t.same([...tested].sort(), [...FAILURE_MODES].sort())
  })
})

t.test('retryAfterSeconds: delta-seconds, HTTP dates, garbage, bounds', async (t) => {
  const now = Date.UTC(2024, 4, 1, 12, 0, 0)
  t.equal(retryAfterSeconds('7', now), 7)
  t.equal(retryAfterSeconds(' 120 ', now), 120)
  t.equal(retryAfterSeconds(['9', '3'], now), 9, 'the first of several headers')
  t.equal(retryAfterSeconds(new Date(now + 30_000).toUTCString(), now), 30, 'an HTTP date')
  t.equal(retryAfterSeconds('Wed, 01 May 2024 12:02:00 GMT', now), 120)
  t.equal(retryAfterSeconds(new Date(now + 1500).toUTCString(), now), 1, 'rounded up')

  t.equal(retryAfterSeconds(undefined, now), DEFAULT_RETRY_AFTER_SECONDS, 'absent → default')
  t.equal(retryAfterSeconds([], now), DEFAULT_RETRY_AFTER_SECONDS, 'no value → default')
  for (const garbage of ['soon', 'abc', '5s', '', ' ', '1e3', '0x10', 'in 10 seconds']) {
    t.equal(retryAfterSeconds(garbage, now), DEFAULT_RETRY_AFTER_SECONDS, `${JSON.stringify(garbage)} → default`)
  }
  t.equal(DEFAULT_RETRY_AFTER_SECONDS, 5)

  t.equal(retryAfterSeconds('0', now), 1, 'at least 1 s')
  t.equal(retryAfterSeconds(new Date(now - 60_000).toUTCString(), now), 1, 'a date in the past → 1 s')
  t.equal(retryAfterSeconds('3600', now), 3600)
  t.equal(retryAfterSeconds('3601', now), 3600, 'at most 1 h')
  t.equal(retryAfterSeconds('99999999999999999999999', now), 3600)
  t.equal(retryAfterSeconds(new Date(now + 86_400_000).toUTCString(), now), 3600, 'a date a day away → 1 h')
})

t.test('retries: connection failures, 5xx and 429, with backoff, within the budget', async (t) => {
  const policy = (over: Partial<Config['threatstack']['retry']> = {}): Config['threatstack']['retry'] =>
    ({ retries: 3, baseDelayMs: 5, maxDelayMs: 20, budgetMs: 10_000, ...over })
  const observed = (): { outcomes: string[], retries: number, observer: { request: (o: string) => void, retry: () => void } } => {
    const o = { outcomes: [] as string[], retries: 0, observer: { request: (outcome: string) => { o.outcomes.push(outcome) }, retry: () => { o.retries++ } } }
    return o
  }
  const retrying = async (t: Test, retry: Config['threatstack']['retry'], timeoutMs = 2000): Promise<{ sim: ThreatStackSimulator, ts: ThreatStackClient, seen: ReturnType<typeof observed> }> => {
    const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
    const seen = observed()
    const ts = createThreatStackClient({
      baseUrl: sim.url, apiKey: SECRETS.apiKey, auth: HAWK, timeoutMs, connectTimeoutMs: 1000, maxConnections: 4, maxResponseBytes: 65536, retry
    }, seen.observer)
    t.teardown(async () => closeThreatStackClient(ts))
    return { sim, ts, seen }
  }

  t.test('5xx, HTML 503 and a reset are retried until an answer', async (t) => {
    for (const mode of ['json-500', 'html-503', 'reset'] as const) {
      const { sim, ts, seen } = await retrying(t, policy())
      await sim.failWith(mode, 2)
      const alert = await fetchAlert(ts, ID)
      t.equal(alert.id, ID, `${mode}: the third attempt answers`)
      t.equal(sim.requests.length, 3, `${mode}: three attempts`)
      t.equal(seen.retries, 2, `${mode}: two retries observed`)
      t.equal(seen.outcomes.at(-1), 'success')
    }
  })

  t.test('a 4xx, an invalid or oversized answer is not retried', async (t) => {
    for (const mode of ['json-404', 'json-401', 'invalid-json', 'oversized'] as const) {
      const { sim, ts, seen } = await retrying(t, policy())
      await sim.failWith(mode, 1)
      const err = await fetchAlert(ts, ID).catch((e: unknown) => e)
      t.ok(err instanceof ThreatStackError, `${mode}: a ThreatStackError`)
      t.equal(sim.requests.length, 1, `${mode}: one attempt`)
      t.equal(seen.retries, 0)
    }
  })

  t.test('retries stop at the configured count', async (t) => {
    const { sim, ts, seen } = await retrying(t, policy({ retries: 2 }))
    await sim.failWith('json-500')
    await t.rejects(fetchAlert(ts, ID), { name: 'ThreatStackAPIError', upstreamStatus: 500 })
    t.equal(sim.requests.length, 3)
    t.same(seen.outcomes, ['http_5xx', 'http_5xx', 'http_5xx'])
  })

  t.test("429: Threat Stack's Retry-After is honoured", async (t) => {
    const { sim, ts } = await retrying(t, policy())
    await sim.failWith('json-429', 1, { retryAfter: '1' })
    t.equal((await fetchAlert(ts, ID)).id, ID)
    t.equal(sim.requests.length, 2)
    const [first, second] = sim.requests as [RecordedRequest, RecordedRequest]
    t.ok(second.at - first.at >= 990, 'the second attempt waited the second asked for')
  })

  t.test('a Retry-After beyond the budget ends the call at once, as a 503 for the sender to retry', async (t) => {
    const { sim, ts, seen } = await retrying(t, policy({ budgetMs: 3000 }))
    await sim.failWith('json-429', 1, { retryAfter: '7' })
    const err = await fetchAlert(ts, ID).catch((e: unknown) => e)
    t.match(err, { name: 'ThreatStackAPIError', statusCode: 503, retryAfterSeconds: 7 })
    t.equal(sim.requests.length, 1, 'no attempt after the budget')
    t.equal(seen.retries, 0)
  })

  t.test('a hanging Threat Stack is given up within the budget', async (t) => {
    const { sim, ts } = await retrying(t, policy({ retries: 10, budgetMs: 1000 }), 300)
    await sim.failWith('hang')
    await t.rejects(fetchAlert(ts, ID), { name: 'ThreatStackRequestError', statusCode: 504 })
    t.ok(sim.requests.length >= 2 && sim.requests.length <= 4, `attempts of 300 ms fit a 1 s budget (${sim.requests.length})`)
  })

  t.test('the status check makes one attempt', async (t) => {
    const { sim, ts } = await retrying(t, policy())
    await sim.failWith('json-500', 1)
    await t.rejects(checkThreatStack(ts, 1000))
    t.equal(sim.requests.length, 1)
  })
})

t.test('single alerts keep to the rate limit: the client pauses at the last request of a window, never provoking a 429', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const c = client(t, sim, { retry: { retries: 3, baseDelayMs: 10, maxDelayMs: 100, budgetMs: 20_000 } })
  sim.setRateLimit({ limit: 3, windowMs: 1000 })
  for (let i = 0; i < 8; i++) {
    const id = `${ID.slice(0, 20)}${String(i).padStart(4, '0')}`
    t.equal((await fetchAlert(c, id)).id, id)
  }
  t.equal(sim.requests.length, 8, 'one request per alert')
  t.equal(sim.requests.filter((r) => r.rateLimited === true).length, 0, 'never answered 429')
})

t.test('a pause longer than the budget ends the call at once, as a 503 for the sender to retry', async (t) => {
  const sim = await simulator(t, { userId: SECRETS.userId, organizationId: SECRETS.organizationId })
  const c = client(t, sim, { retry: { retries: 3, baseDelayMs: 10, maxDelayMs: 100, budgetMs: 500 } })
  // A window of 5 s: once its requests are spent, the next may go only after the reset.
  sim.setRateLimit({ limit: 1, windowMs: 5000 })
  await fetchAlert(c, ID)
  const err = await rejection(t, fetchAlert(c, ID), ThreatStackAPIError)
  t.equal(err.statusCode, 503)
  t.equal(sim.requests.length, 1, 'the second request is never sent')
})
