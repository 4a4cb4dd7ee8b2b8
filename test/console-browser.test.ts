// The console in a real browser (Debian's chromium, headless) against the service on real local
// parts: s3rver, the Threat Stack simulator, the app listening on 127.0.0.1.
import t from 'tap'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Page, Request } from 'playwright-core'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { build, TOKENS, BEARER, SECRETS } from './helpers/build.js'
import { LOCAL_S3_CREDENTIALS } from '../dev/local-s3.js'
import { launchBrowser, withBrowser } from './helpers/browser.js'
import { writeLedger, LEDGER_VERSION, type Ledger } from '../services/ledger.js'
import { runDigestJob } from '../services/digest.js'
import { webhookKey } from '../services/keys.js'
import { putOnce } from '../services/storage.js'

const DAY = Date.UTC(2017, 0, 15)
const HOUR = 3_600_000
const WAIT = { timeout: 30_000 }
// Screenshots go to docs/ when asked (CONSOLE_SCREENSHOTS=docs), so a test run leaves the tree as it was.
const SHOTS = process.env.CONSOLE_SCREENSHOTS

/** A 24-hex id (an ObjectId, as Threat Stack uses) created at `ms`. */
function idAt (ms: number, n: number): string {
  return Math.floor(ms / 1000).toString(16).padStart(8, '0') + n.toString(16).padStart(16, '0')
}

const ALERTS = [
  { at: DAY + 10 * HOUR + 5 * 60_000, severity: 1, title: 'Root login over SSH from a new address', server: 'web-1', rule: 'rule-ssh-root' },
  { at: DAY + 10 * HOUR + 40 * 60_000, severity: 2, title: 'Package installed outside change window', server: 'web-2', rule: 'rule-pkg' },
  { at: DAY + 11 * HOUR + 12 * 60_000, severity: 3, title: 'Unexpected outbound connection', server: 'db-1', rule: 'rule-net' },
  { at: DAY + 12 * HOUR + 30 * 60_000, severity: 2, title: 'Sudo used by a service account', server: 'web-1', rule: 'rule-sudo' }
].map((a, i) => ({ ...a, id: idAt(a.at, i + 1) }))

const PENDING = { at: DAY + 26 * HOUR + 10 * 60_000, id: idAt(DAY + 26 * HOUR + 10 * 60_000, 42) }

function ledger (hourMs: number, parts: Partial<Ledger>): Ledger {
  return {
    version: LEDGER_VERSION,
    hour: new Date(hourMs).toISOString(),
    checkedAt: new Date(hourMs + 80 * 60_000).toISOString(),
    checks: 1,
    complete: false,
    threatstack: { total: 0, active: 0, dismissed: 0 },
    archived: { total: 0, viaWebhook: 0, viaBackfill: 0 },
    missing: [],
    pending: [],
    unknown: [],
    backfilled: [],
    unknownTries: {},
    ...parts
  }
}

async function shot (page: Page, name: string): Promise<void> {
  if (SHOTS === undefined || SHOTS === '') return
  await mkdir(SHOTS, { recursive: true })
  await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true })
}

t.test('the console in a real browser', async (t) => {
  await withBrowser(t, 'coverage, search, one alert and a refused token, all from the service\'s own origin', async (t) => {
    const { app, threatstack, s3 } = await build(t)
    for (const a of ALERTS) {
      threatstack.setAlert(a.id, {
        id: a.id,
        created_at: a.at,
        severity: a.severity,
        title: a.title,
        source: 'host',
        server_or_region: a.server,
        rule: { id: a.rule, name: a.title },
        organization_id: 'org-demo'
      })
    }
    const posted = await app.inject({
      method: 'POST',
      url: '/api/v1/s3/alert',
      headers: BEARER.ingest,
      payload: { alerts: ALERTS.map((a) => ({ id: a.id, created_at: String(a.at), severity: a.severity, title: a.title, server_or_region: a.server })) }
    })
    t.equal(posted.statusCode, 200, 'seeded alerts archived')
    t.same(posted.json().archived.length, ALERTS.length)
    // Hour 10 complete, 11 missing one alert Threat Stack lists, 12 pending one, 13 and later never checked.
    const missingId = idAt(DAY + 11 * HOUR + 50 * 60_000, 99)
    await writeLedger(app.store, DAY + 10 * HOUR, ledger(DAY + 10 * HOUR, {
      complete: true, threatstack: { total: 2, active: 2, dismissed: 0 }, archived: { total: 2, viaWebhook: 2, viaBackfill: 0 }
    }))
    await writeLedger(app.store, DAY + 11 * HOUR, ledger(DAY + 11 * HOUR, {
      threatstack: { total: 2, active: 2, dismissed: 0 }, archived: { total: 1, viaWebhook: 1, viaBackfill: 0 }, missing: [missingId]
    }))
    await writeLedger(app.store, DAY + 12 * HOUR, ledger(DAY + 12 * HOUR, {
      threatstack: { total: 1, active: 1, dismissed: 0 }, archived: { total: 1, viaWebhook: 1, viaBackfill: 0 }, pending: [ALERTS[3]!.id]
    }))

    // Hour 10 is digested (as the sweeper does once it closes); hour 11 is not.
    const digested = await runDigestJob({ store: app.store, owner: 'test', lookbackHours: 1 }, DAY + 11 * HOUR + 5 * 60_000)
    t.same(digested.written, ['digests/2017/01/15/10.json'])
    // A record whose full alert is not stored yet, on the next day (outside the searches below).
    t.equal(await putOnce(app.store, webhookKey('', PENDING.id, PENDING.at), JSON.stringify({ id: PENDING.id, created_at: String(PENDING.at), title: 'Pending' })), 'created')

    // Another writer with bucket access (s3rver keeps no checksum: only the digest can tell).
    const raw = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS })
    t.teardown(() => raw.destroy())
    const putRaw = async (key: string, body: string): Promise<void> => { await raw.send(new PutObjectCommand({ Bucket: SECRETS.bucket, Key: key, Body: body })) }

    const origin = await app.listen({ host: '127.0.0.1', port: 0 })
    const context = await launchBrowser(t)
    const requests: string[] = []
    const cspViolations: string[] = []
    context.on('request', (r: Request) => { requests.push(r.url()) })
    const page = await context.newPage()
    page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()) })
    page.on('pageerror', (e) => { cspViolations.push(`page error: ${e.message}`) })

    // Load: no token yet, the page asks for one.
    await page.goto(`${origin}/console#coverage?start=2017-01-15&end=2017-01-16`)
    await page.locator('#notice-change-token').waitFor(WAIT)
    t.match(await page.locator('#notice').textContent(), /Paste a read token/)

    // Token: pasted once, kept in sessionStorage, never in a URL or a cookie.
    await page.fill('#token-input', TOKENS.read)
    await page.click('#token-form button[type=submit]')
    const cell = (h: number) => page.locator(`.cell[data-hour="${new Date(DAY + h * HOUR).toISOString()}"]`)
    await cell(11).waitFor(WAIT)
    t.equal(await page.evaluate("sessionStorage.getItem('threatstack-to-s3.read-token')"), TOKENS.read)
    t.same(await context.cookies(), [], 'no cookie')

    // Coverage: one strip for the day, 24 cells, coloured by the ledger.
    t.equal(await page.locator('.day').count(), 1)
    t.equal(await page.locator('.day .cell').count(), 24)
    t.equal(await cell(10).getAttribute('data-state'), 'complete')
    t.equal(await cell(11).getAttribute('data-state'), 'missing')
    t.equal(await cell(11).textContent(), '1')
    t.equal(await cell(12).getAttribute('data-state'), 'pending')
    t.equal(await cell(13).getAttribute('data-state'), 'unchecked')
    await cell(11).hover()
    const detail = await page.locator('#coverage-detail').textContent()
    t.match(detail, /11:00 UTC: missing 1/)
    t.match(detail, /Threat Stack 2 · archived 1 \(webhook 1, backfill 0\) · missing 1 · pending 0/)
    t.match(await cell(11).getAttribute('title'), /missing 1/, 'the counts are the cell\'s tooltip too')
    await shot(page, 'coverage')

    // Click an hour: the search of that hour.
    await cell(11).click()
    await page.locator(`#search-results tr[data-id="${ALERTS[2]!.id}"]`).waitFor(WAIT)
    t.equal(await page.locator('#search-results tbody tr').count(), 1, 'only the alert of hour 11')
    t.equal(await page.inputValue('#search-start'), '2017-01-15T11:00:00.000Z')
    t.equal(await page.inputValue('#search-end'), '2017-01-15T12:00:00.000Z')

    // Search the whole day: table, histogram of the page.
    await page.fill('#search-start', '2017-01-15')
    await page.fill('#search-end', '2017-01-16')
    await page.click('#search-form button[type=submit]')
    await page.locator('#search-results tbody tr').nth(ALERTS.length - 1).waitFor(WAIT)
    t.equal(await page.locator('#search-results tbody tr').count(), ALERTS.length)
    const first = page.locator('#search-results tbody tr').first()
    t.same(await first.locator('td').allTextContents(),
      ['2017-01-15 10:05:00', '1', ALERTS[0]!.title, 'web-1', 'rule-ssh-root'], 'time, severity, title, server, rule')
    t.equal(await page.locator('#severity-histogram rect[data-severity="2"]').getAttribute('data-count'), '2')
    t.equal(await page.locator('#severity-histogram rect[data-severity="1"]').getAttribute('data-count'), '1')
    await shot(page, 'search')

    // Paging: two alerts per page (a link's page size), next by the cursor, back to the first.
    const rowIds = async () => page.locator('#search-results tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')))
    await page.evaluate("window.location.hash = '#search?start=2017-01-15&end=2017-01-16&limit=2'")
    await page.locator(`#search-results tr[data-id="${ALERTS[1]!.id}"]`).waitFor(WAIT)
    t.same(await rowIds(), [ALERTS[0]!.id, ALERTS[1]!.id], 'page 1')
    t.equal(await page.inputValue('#search-limit'), '2')
    await page.click('#search-next')
    await page.locator('#search-page').filter({ hasText: 'page 2' }).waitFor(WAIT)
    await page.locator(`#search-results tr[data-id="${ALERTS[3]!.id}"]`).waitFor(WAIT)
    t.same(await rowIds(), [ALERTS[2]!.id, ALERTS[3]!.id], 'page 2')
    t.ok(await page.locator('#search-next').isDisabled(), 'no page after the last')
    await page.click('#search-first')
    await page.locator('#search-page').filter({ hasText: 'page 1' }).waitFor(WAIT)
    await page.locator(`#search-results tr[data-id="${ALERTS[0]!.id}"]`).waitFor(WAIT)
    t.same(await rowIds(), [ALERTS[0]!.id, ALERTS[1]!.id], 'back to page 1')

    // A filter: severity 1 and a server, sent as the search route's parameters.
    await page.check('#search-form input[name=severity][value="1"]')
    await page.fill('#search-server', 'web-1')
    const filtered = page.waitForRequest((r) => r.url().includes('/api/v1/s3/alert?') && r.url().includes('severity=1'), WAIT)
    await page.click('#search-form button[type=submit]')
    const sent = new URL((await filtered).url())
    t.same(sent.searchParams.getAll('severity'), ['1'])
    t.equal(sent.searchParams.get('server'), 'web-1')
    await page.locator(`#search-results tr[data-id="${ALERTS[0]!.id}"]`).waitFor(WAIT)
    const severities = await page.locator('#search-results tbody tr td:nth-child(2)').allTextContents()
    t.same(severities, ['1'], 'the route filtered by severity and server')

    // One alert of a digested hour: full JSON, the webhook record beside it, both covered, curl.
    await page.click(`#search-results tr[data-id="${ALERTS[0]!.id}"] a`)
    await page.locator('#alert-json').filter({ hasText: ALERTS[0]!.id }).waitFor(WAIT)
    const json = JSON.parse(await page.locator('#alert-json').textContent() ?? '') as Record<string, unknown>
    t.match(json, { id: ALERTS[0]!.id, severity: 1, title: ALERTS[0]!.title })
    const record = JSON.parse(await page.locator('#record-json').textContent() ?? '') as Record<string, unknown>
    t.same(record, { id: ALERTS[0]!.id, created_at: String(ALERTS[0]!.at), severity: 1, title: ALERTS[0]!.title, server_or_region: 'web-1' },
      'the webhook record as posted, beside the full alert')
    t.equal(await page.locator('#record-digest').getAttribute('data-status'), 'covered')
    t.equal(await page.locator('#alert-digest').getAttribute('data-status'), 'covered')
    const facts = await page.locator('#alert-facts').textContent()
    t.match(facts, `webhooks/2017/01/15/10/05/${ALERTS[0]!.id}`)
    t.match(facts, 'covered by digests/2017/01/15/10.json')
    t.match(facts, /SHA-256 [0-9a-f]{64}, \d+ bytes/)
    t.notMatch(facts, /status not shown|no read route/)
    await page.locator('#alert-ledger').filter({ hasText: 'complete' }).waitFor(WAIT)
    const curl = await page.locator('#alert-curl').textContent()
    t.equal(curl, `curl -sS -H "Authorization: Bearer $READ_TOKEN" '${origin}/api/v1/s3/alert/${ALERTS[0]!.id}'`)
    t.equal(await page.locator('#evidence-curl').textContent(),
      `curl -sS -H "Authorization: Bearer $READ_TOKEN" '${origin}/api/v1/s3/alert/${ALERTS[0]!.id}/evidence'`)
    await shot(page, 'alert')

    // An alert of an hour without a digest: not yet.
    await page.evaluate(`window.location.hash = '#alert/${ALERTS[2]!.id}'`)
    await page.locator('#alert-json').filter({ hasText: ALERTS[2]!.id }).waitFor(WAIT)
    await page.locator('#record-digest[data-status="not-yet"]').waitFor(WAIT)
    t.equal(await page.locator('#alert-digest').getAttribute('data-status'), 'not-yet')
    t.equal(await page.locator('#record-digest').textContent(), 'not yet')
    t.match(await page.locator('#alert-facts').textContent(), /not yet covered/)

    // A record rewritten in the bucket after its hour was digested: a mismatch, both hashes shown.
    const tamperedKey = `webhooks/2017/01/15/10/40/${ALERTS[1]!.id}`
    await putRaw(tamperedKey, JSON.stringify({ id: ALERTS[1]!.id, created_at: String(ALERTS[1]!.at), title: 'Nothing happened' }))
    await page.evaluate(`window.location.hash = '#alert/${ALERTS[1]!.id}'`)
    await page.locator('#record-digest[data-status="mismatch"]').waitFor(WAIT)
    t.equal(await page.locator('#alert-digest').getAttribute('data-status'), 'covered', 'the full alert is untouched')
    t.match(await page.locator('#record-json').textContent(), /Nothing happened/, 'what is stored now is shown, flagged')
    t.match(await page.locator('#alert-facts').textContent(),
      /MISMATCH: digests\/2017\/01\/15\/10\.json lists SHA-256 [0-9a-f]{64} \(\d+ bytes\); stored now: SHA-256 [0-9a-f]{64} \(\d+ bytes\)/)

    // A pending alert: its record, and no full alert yet.
    await page.evaluate(`window.location.hash = '#alert/${PENDING.id}'`)
    await page.locator('#record-json').filter({ hasText: PENDING.id }).waitFor(WAIT)
    t.match(await page.locator('#alert-json').textContent(), /^Not stored yet \(pending\)/)
    t.match(await page.locator('#alert-facts').textContent(), /not stored yet \(pending\)/)
    t.match(await page.locator('#alert-facts').textContent(), /2017-01-16 02:10:00 UTC/, 'created, from the record')

    // An unknown id: the envelope's message, no stack.
    await page.evaluate("window.location.hash = '#alert/doesnotexist'")
    await page.locator('#notice').filter({ hasText: 'AlertNotFoundError' }).waitFor(WAIT)
    const notFound = await page.locator('#notice').textContent()
    t.match(notFound, /^AlertNotFoundError: Alert not found in the archive \(request [\w-]+\)$/, 'the envelope\'s type and message')
    t.notMatch(notFound, /\bat .*\.(ts|js):\d+/, 'no stack')

    // A wrong token: the envelope's message and a prompt to change the token.
    await page.fill('#token-input', 'not-a-token')
    await page.click('#token-form button[type=submit]')
    await page.locator('#notice-change-token').waitFor(WAIT)
    const refused = await page.locator('#notice').textContent()
    t.match(refused, /The token was not accepted/)
    t.notMatch(refused, /at .*\.(ts|js):\d+/)
    t.ok(await page.locator('#token-form.attention').isVisible(), 'the token form is pointed at')
    await shot(page, 'token')
    // The ingest token may not read: 403, the same prompt.
    await page.fill('#token-input', TOKENS.ingest)
    await page.click('#token-form button[type=submit]')
    await page.locator('#notice').filter({ hasText: 'may not read the archive' }).waitFor(WAIT)
    t.ok(await page.locator('#notice-change-token').isVisible())

    t.same(cspViolations, [], 'nothing refused by the CSP, no script error')
    const own = new URL(origin).origin
    const elsewhere = requests.filter((u) => !u.startsWith('data:') && new URL(u).origin !== own)
    t.same(elsewhere, [], 'every request the page made went to the service')
    t.ok(requests.some((u) => u.includes('/api/v1/s3/coverage')), 'requests were recorded')
    t.notOk(requests.some((u) => u.includes(TOKENS.read) || u.includes(TOKENS.ingest)), 'no token in any URL')
  })
})
