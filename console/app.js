// The console's views: coverage (ledger per hour), search (filters, histogram, table), one alert.
// State that may be shared lives in the location hash; the token never does.
import { ApiError, curlFor, getJson, readToken, saveToken } from './api.js'

const API = '/api/v1/s3'
const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
// Pages of ledger hours fetched for one strip at most (744 hours each: a month per page).
const MAX_COVERAGE_PAGES = 24
const SEVERITIES = ['1', '2', '3']
const SEVERITY_NAMES = { 1: 'high', 2: 'medium', 3: 'low' }
const SEARCH_FILTERS = ['source', 'server', 'rule', 'q']

const $ = (id) => document.getElementById(id)

function el (tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'text') node.textContent = value
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value)
  }
  node.append(...children)
  return node
}

function svg (tag, attrs = {}, text) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

/* ---- notices and the token ---- */

function showNotice (message, { kind = 'error', askToken = false } = {}) {
  const notice = $('notice')
  notice.className = kind
  notice.replaceChildren(el('span', { text: message }))
  if (askToken) {
    notice.append(el('button', { type: 'button', id: 'notice-change-token', text: 'Change token', onclick: focusToken }))
    $('token-form').classList.add('attention')
  }
  notice.hidden = false
}

function clearNotice () {
  $('notice').hidden = true
  $('token-form').classList.remove('attention')
}

function focusToken () {
  const input = $('token-input')
  input.value = ''
  input.focus()
}

function showError (err) {
  if (err instanceof ApiError) {
    const id = err.requestId !== undefined ? ` (request ${err.requestId})` : ''
    if (err.tokenRefused) {
      const why = err.status === 403 ? 'This token may not read the archive' : 'The token was not accepted'
      showNotice(`${why}: ${err.message}${id} Paste a read token to continue.`, { askToken: true })
    } else {
      showNotice(`${err.type}: ${err.message}${id}`)
    }
  } else {
    showNotice('The console could not show this answer.')
  }
}

function renderTokenState () {
  $('token-state').textContent = readToken() === '' ? 'no token' : 'token set for this tab'
}

/* ---- time ---- */

function createdMs (alert) {
  const v = alert.created_at ?? alert.createdAt
  if (typeof v === 'number') return v
  if (typeof v === 'string') return /^\d+$/.test(v) ? Number(v) : Date.parse(v)
  return Number.NaN
}

function isoMinute (ms) {
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '—'
}

function dateOnly (ms) {
  return new Date(ms).toISOString().slice(0, 10)
}

/** The hour's key path, as the archive lays it out: YYYY/MM/DD/HH. */
function hourPath (ms) {
  const d = new Date(ms)
  const p = (n) => String(n).padStart(2, '0')
  return `${d.getUTCFullYear()}/${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${p(d.getUTCHours())}`
}

/* ---- routing ---- */

function parseHash () {
  const raw = window.location.hash.replace(/^#/, '')
  const [path, query = ''] = raw.split('?')
  return { path: path ?? '', params: new URLSearchParams(query) }
}

function go (path, params) {
  const query = params !== undefined ? new URLSearchParams(params).toString() : ''
  window.location.hash = query === '' ? path : `${path}?${query}`
}

function show (view) {
  for (const name of ['coverage', 'search', 'alert']) $(`view-${name}`).hidden = name !== view
  $('nav-coverage').classList.toggle('active', view === 'coverage')
  $('nav-search').classList.toggle('active', view === 'search')
}

async function route () {
  clearNotice()
  const { path, params } = parseHash()
  try {
    if (path.startsWith('alert/')) {
      show('alert')
      await loadAlert(decodeURIComponent(path.slice('alert/'.length)))
    } else if (path === 'search') {
      show('search')
      await loadSearch(params)
    } else {
      show('coverage')
      await loadCoverage(params)
    }
  } catch (err) {
    showError(err)
  }
}

/* ---- coverage ---- */

function hourState (h) {
  if (!h.checked) return { cls: 'unchecked', label: 'not yet checked', mark: '' }
  if (h.missing.length > 0) return { cls: 'missing', label: `missing ${h.missing.length}`, mark: String(h.missing.length) }
  if (h.pending.length > 0) return { cls: 'pending', label: `pending ${h.pending.length}`, mark: String(h.pending.length) }
  if (h.complete === true) return { cls: 'complete', label: 'complete', mark: '' }
  return { cls: 'incomplete', label: `unknown to Threat Stack ${h.unknown.length}`, mark: String(h.unknown.length) }
}

function hourCounts (h) {
  const start = Date.parse(h.hour)
  const head = `${isoMinute(start).slice(0, 16)} UTC: ${hourState(h).label}`
  if (!h.checked) return `${head}\nThis hour has not been compared with Threat Stack yet.`
  return `${head}\nThreat Stack ${h.threatstack} · archived ${h.archived} (webhook ${h.viaWebhook}, backfill ${h.viaBackfill})` +
    ` · missing ${h.missing.length} · pending ${h.pending.length} · unknown ${h.unknown.length}\nchecked ${h.checkedAt}`
}

async function fetchCoverage (start, end) {
  const hours = []
  let cursor
  for (let page = 0; page < MAX_COVERAGE_PAGES; page++) {
    const body = await getJson(`${API}/coverage`, { start, end, limit: 744, cursor })
    hours.push(...body.hours)
    if (body.nextCursor === null) return { hours, truncated: false }
    cursor = body.nextCursor
  }
  return { hours, truncated: true }
}

async function loadCoverage (params) {
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate())
  const end = params.get('end') ?? dateOnly(today + DAY_MS)
  const start = params.get('start') ?? dateOnly(Date.parse(end) - 7 * DAY_MS)
  $('coverage-start').value = start
  $('coverage-end').value = end
  const grid = $('coverage-grid')
  grid.replaceChildren()
  $('coverage-summary').textContent = 'Loading…'
  $('coverage-detail').textContent = ''
  let result
  try {
    result = await fetchCoverage(start, end)
  } catch (err) {
    $('coverage-summary').textContent = ''
    throw err
  }
  const byDay = new Map()
  const totals = { complete: 0, missing: 0, pending: 0, incomplete: 0, unchecked: 0 }
  for (const h of result.hours) {
    const ms = Date.parse(h.hour)
    const day = dateOnly(ms)
    if (!byDay.has(day)) byDay.set(day, new Array(24).fill(undefined))
    byDay.get(day)[new Date(ms).getUTCHours()] = h
    totals[hourState(h).cls]++
  }
  const axis = el('div', { class: 'hours-axis' })
  for (let i = 0; i < 24; i++) axis.append(el('span', { text: i % 3 === 0 ? String(i).padStart(2, '0') : '' }))
  grid.append(axis)
  for (const [day, hours] of byDay) {
    const row = el('div', { class: 'day', 'data-day': day }, el('span', { class: 'label', text: day }))
    hours.forEach((h) => {
      if (h === undefined) {
        row.append(el('span', { class: 'cell outside' }))
        return
      }
      const state = hourState(h)
      const counts = hourCounts(h)
      const start = Date.parse(h.hour)
      const detail = () => { $('coverage-detail').textContent = counts }
      row.append(el('button', {
        type: 'button',
        class: `cell ${state.cls}`,
        title: counts,
        'aria-label': counts,
        'data-hour': h.hour,
        'data-state': state.cls,
        text: state.mark,
        onmouseenter: detail,
        onfocus: detail,
        onclick: () => go('search', { start: new Date(start).toISOString(), end: new Date(start + HOUR_MS).toISOString() })
      }))
    })
    grid.append(row)
  }
  $('coverage-summary').textContent = `${result.hours.length} hours: ${totals.complete} complete, ${totals.missing} with missing alerts, ` +
    `${totals.pending} with pending alerts, ${totals.incomplete} with alerts unknown to Threat Stack, ${totals.unchecked} not yet checked` +
    (result.truncated ? ' (range cut short: choose a smaller one)' : '')
}

/* ---- search ---- */

const searchState = { key: '', cursors: [undefined], page: 0 }

function searchParamsFrom (params) {
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate())
  return {
    start: params.get('start') ?? dateOnly(today - 7 * DAY_MS),
    end: params.get('end') ?? dateOnly(today + DAY_MS),
    severity: params.getAll('severity').filter((s) => SEVERITIES.includes(s)),
    ...Object.fromEntries(SEARCH_FILTERS.map((f) => [f, params.get(f) ?? ''])),
    limit: params.get('limit') ?? '100'
  }
}

function fillSearchForm (query) {
  $('search-start').value = query.start
  $('search-end').value = query.end
  for (const box of document.querySelectorAll('#search-form input[name=severity]')) box.checked = query.severity.includes(box.value)
  for (const f of SEARCH_FILTERS) $(`search-${f}`).value = query[f]
  const limit = $('search-limit')
  // A page size from a shared link that the menu does not offer is added to it.
  if (![...limit.options].some((o) => o.value === query.limit) && /^\d{1,4}$/.test(query.limit)) limit.append(el('option', { text: query.limit }))
  limit.value = query.limit
}

function readSearchForm () {
  const params = new URLSearchParams()
  params.set('start', $('search-start').value.trim())
  params.set('end', $('search-end').value.trim())
  for (const box of document.querySelectorAll('#search-form input[name=severity]:checked')) params.append('severity', box.value)
  for (const f of SEARCH_FILTERS) {
    const v = $(`search-${f}`).value.trim()
    if (v !== '') params.set(f, v)
  }
  params.set('limit', $('search-limit').value)
  return params
}

function severityClass (severity) {
  return SEVERITIES.includes(String(severity)) ? `sev${severity}` : 'other'
}

function ruleOf (alert) {
  const rule = alert.rule
  const nested = rule !== null && typeof rule === 'object' ? (rule.id ?? rule.name) : undefined
  const value = alert.ruleId ?? alert.rule_id ?? nested ?? (typeof rule === 'string' ? rule : undefined)
  return value === undefined ? '' : String(value)
}

function renderHistogram (alerts) {
  const counts = { 1: 0, 2: 0, 3: 0, other: 0 }
  for (const a of alerts) counts[SEVERITIES.includes(String(a.severity)) ? String(a.severity) : 'other']++
  const bars = [['1', 'sev1'], ['2', 'sev2'], ['3', 'sev3'], ['other', 'other']].filter(([k]) => k !== 'other' || counts.other > 0)
  const max = Math.max(1, ...bars.map(([k]) => counts[k]))
  const width = 360
  const rowH = 24
  const labelW = 90
  const chart = svg('svg', { width, height: bars.length * rowH + 4, role: 'img', 'aria-label': 'alerts of this page by severity', id: 'severity-histogram' })
  bars.forEach(([k, cls], i) => {
    const y = i * rowH + 2
    const w = Math.round((counts[k] / max) * (width - labelW - 50))
    chart.append(svg('text', { x: 0, y: y + 15 }, k === 'other' ? 'other' : `${k} ${SEVERITY_NAMES[k]}`))
    chart.append(svg('rect', { class: `bar ${cls}`, x: labelW, y, width: Math.max(w, 1), height: rowH - 6, 'data-severity': k, 'data-count': counts[k] }))
    chart.append(svg('text', { x: labelW + Math.max(w, 1) + 6, y: y + 15 }, String(counts[k])))
  })
  $('search-histogram').replaceChildren(chart)
}

async function loadSearch (params) {
  const query = searchParamsFrom(params)
  fillSearchForm(query)
  const key = JSON.stringify(query)
  if (key !== searchState.key) Object.assign(searchState, { key, cursors: [undefined], page: 0 })
  const cursor = searchState.cursors[searchState.page]
  const tbody = $('search-results').querySelector('tbody')
  tbody.replaceChildren()
  $('search-histogram').replaceChildren()
  $('search-missing').textContent = ''
  $('search-summary').textContent = 'Searching…'
  $('search-next').disabled = true
  $('search-first').disabled = true
  let body
  try {
    body = await getJson(`${API}/alert`, { ...query, cursor })
  } catch (err) {
    $('search-summary').textContent = ''
    throw err
  }
  const alerts = body.alerts
  for (const a of alerts) {
    const sev = a.severity ?? ''
    tbody.append(el('tr', { 'data-id': a.id },
      el('td', { class: 'time', text: isoMinute(createdMs(a)) }),
      el('td', {}, el('span', { class: `sev ${severityClass(sev)}`, text: String(sev) })),
      el('td', {}, el('a', { href: `#alert/${encodeURIComponent(a.id)}`, text: typeof a.title === 'string' && a.title !== '' ? a.title : a.id })),
      el('td', { text: String(a.server_or_region ?? a.hostname ?? '') }),
      el('td', { text: ruleOf(a) })
    ))
  }
  renderHistogram(alerts)
  $('search-summary').textContent = `${alerts.length} alert${alerts.length === 1 ? '' : 's'} on this page, ` +
    `from ${query.start} to ${query.end}${body.nextCursor !== null ? '; more on the next page' : ''}`
  $('search-page').textContent = `page ${searchState.page + 1}`
  if (body.missing.length > 0) {
    $('search-missing').textContent = `Archived by webhook, full alert not stored yet: ${body.missing.join(', ')}`
  }
  $('search-first').disabled = searchState.page === 0
  $('search-next').disabled = body.nextCursor === null
  searchState.cursors[searchState.page + 1] = body.nextCursor ?? undefined
}

/* ---- one alert ---- */

function fact (dt, ...dd) {
  return [el('dt', { text: dt }), el('dd', {}, ...dd)]
}

/** What the hour's digests say of one object, as a short badge and a sentence. */
function digestText (d, object) {
  if (d.status === 'covered') return { badge: 'covered', sentence: `covered by ${d.digest}` }
  if (d.status === 'mismatch') {
    const now = object.stored === false ? 'it is no longer stored' : `stored now: SHA-256 ${object.sha256} (${object.size} bytes)`
    return { badge: 'mismatch', sentence: `MISMATCH: ${d.digest} lists SHA-256 ${d.listed.sha256} (${d.listed.size} bytes); ${now}` }
  }
  return { badge: 'not yet', sentence: 'not yet covered: no digest of this hour lists it yet' }
}

function showDigest (badgeId, d, object) {
  const text = digestText(d, object)
  const badge = $(badgeId)
  badge.className = `digest ${d.status}`
  badge.dataset.status = d.status
  badge.textContent = text.badge
  badge.title = text.sentence
  return el('span', { class: `digest-line ${d.status}`, 'data-status': d.status, text: text.sentence })
}

function objectFacts (name, object, status) {
  const hash = object.stored === false
    ? el('span', { class: 'note', text: ' — not stored yet (pending)' })
    : el('span', { class: 'hash', text: ` — SHA-256 ${object.sha256}, ${object.size} bytes` })
  return fact(name, el('code', { text: object.key }), hash, el('br'), status)
}

async function loadAlert (id) {
  $('alert-id').textContent = id
  $('alert-json').textContent = 'Loading…'
  $('record-json').textContent = 'Loading…'
  for (const badge of ['alert-digest', 'record-digest']) $(badge).replaceChildren()
  $('alert-facts').replaceChildren()
  const path = `${API}/alert/${encodeURIComponent(id)}`
  const evidencePath = `${path}/evidence`
  $('alert-curl').textContent = curlFor(path)
  $('evidence-curl').textContent = curlFor(evidencePath)
  let evidence
  let alert
  try {
    evidence = await getJson(evidencePath)
    // The full alert's body comes from its own route; while it is pending there is none to ask for.
    if (evidence.alert.stored) alert = (await getJson(path)).alert
  } catch (err) {
    $('alert-json').textContent = ''
    $('record-json').textContent = ''
    throw err
  }
  $('record-json').textContent = JSON.stringify(evidence.webhook.record, null, 2)
  $('alert-json').textContent = alert !== undefined
    ? JSON.stringify(alert, null, 2)
    : 'Not stored yet (pending): the service fetches it from Threat Stack in the background, then by its sweeper.'
  const recordStatus = showDigest('record-digest', evidence.webhook.digest, evidence.webhook)
  const alertStatus = showDigest('alert-digest', evidence.alert.digest, evidence.alert)
  let ms = alert !== undefined ? createdMs(alert) : Number.NaN
  if (!Number.isFinite(ms) && evidence.webhook.record !== null && typeof evidence.webhook.record === 'object') ms = createdMs(evidence.webhook.record)
  const hour = Date.parse(evidence.hour)
  const range = { start: new Date(hour).toISOString(), end: new Date(hour + HOUR_MS).toISOString() }
  const hourLink = el('a', { href: `#search?${new URLSearchParams(range)}`, text: 'alerts of this hour' })
  const ledger = el('span', { id: 'alert-ledger', text: 'loading…' })
  $('alert-facts').replaceChildren(
    ...fact('Created', `${isoMinute(ms)} UTC`),
    ...objectFacts('Webhook record', evidence.webhook, recordStatus),
    ...objectFacts('Full alert', evidence.alert, alertStatus),
    ...fact('Digests', el('span', {
      class: 'note',
      text: `digests/${hourPath(hour)}.json and its supplements, compared with what is stored now. ` +
      `Their signatures and chain: npm run verify -- --start ${range.start} --end ${range.end} --public-key <file>`
    })),
    ...fact('Hour\'s ledger', ledger, ' · ', hourLink)
  )
  try {
    const cov = await getJson(`${API}/coverage`, { ...range, limit: 1 })
    const h = cov.hours[0]
    ledger.textContent = h === undefined ? 'no ledger' : hourCounts(h).split('\n').slice(0, 2).join(' — ')
  } catch (err) {
    ledger.textContent = err instanceof ApiError ? `${err.type}: ${err.message}` : 'not available'
  }
}

/* ---- wiring ---- */

function start () {
  renderTokenState()
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const value = $('token-input').value.trim()
    saveToken(value)
    $('token-input').value = ''
    renderTokenState()
    route()
  })
  $('token-clear').addEventListener('click', () => {
    saveToken('')
    renderTokenState()
    showNotice('Token forgotten. Paste a read token to continue.', { kind: 'info', askToken: true })
  })
  $('coverage-form').addEventListener('submit', (event) => {
    event.preventDefault()
    go('coverage', { start: $('coverage-start').value, end: $('coverage-end').value })
  })
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const params = readSearchForm()
    const same = `search?${params}` === window.location.hash.replace(/^#/, '')
    searchState.key = ''
    if (same) route()
    else go('search', params)
  })
  $('search-next').addEventListener('click', () => {
    searchState.page++
    route()
  })
  $('search-first').addEventListener('click', () => {
    searchState.page = 0
    route()
  })
  for (const button of document.querySelectorAll('button.copy')) {
    button.addEventListener('click', async () => {
      const source = $(button.dataset.copy)
      try {
        await navigator.clipboard.writeText(source.textContent)
        button.textContent = 'Copied'
      } catch {
        window.getSelection()?.selectAllChildren(source)
        button.textContent = 'Selected: press Ctrl+C'
      }
    })
  }
  window.addEventListener('hashchange', () => { route() })
  if (readToken() === '') {
    show(parseHash().path.startsWith('alert/') ? 'alert' : parseHash().path === 'search' ? 'search' : 'coverage')
    showNotice('Paste a read token above to look at the archive. It is kept in this tab only (sessionStorage).', { kind: 'info', askToken: true })
    focusToken()
  } else {
    route()
  }
}

start()
