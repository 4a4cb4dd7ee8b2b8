import t from 'tap'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { BEARER, build } from '../helpers/build.js'
import { ALERT_URL, CREATED_AT, assertError, postAlerts } from '../helpers/requests.js'
import { MAX_FORM_BYTES } from '../../plugins/form-query.js'

t.test('a GET search takes start and end from a form body over HTTP, the query string winning', async (t) => {
  const { app } = await build(t)
  t.equal((await postAlerts(app, { id: 'form0001', created_at: CREATED_AT })).statusCode, 200)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const search = async (query: string, body: string, type = 'application/x-www-form-urlencoded'): Promise<{ status: number, json: { alerts?: Array<{ id: string }>, error?: { type: string } } }> => {
    const res = await request(`http://127.0.0.1:${port}${ALERT_URL}${query}`, { method: 'GET', headers: { ...BEARER.read, 'content-type': type }, body })
    return { status: res.statusCode, json: await res.body.json() as { alerts?: Array<{ id: string }> } }
  }
  const form = await search('', 'start=2017-01-15&end=2017-01-16')
  t.equal(form.status, 200)
  t.same(form.json.alerts?.map((a) => a.id), ['form0001'])

  const mixed = await search('?start=2017-01-16&end=2017-01-17', 'start=2017-01-15&end=2017-01-16')
  t.same(mixed.json.alerts, [], 'the query string wins')

  const partial = await search('?end=2017-01-16', 'start=2017-01-15')
  t.same(partial.json.alerts?.map((a) => a.id), ['form0001'], 'a field missing from the query comes from the form')

  const otherType = await search('', '{"start":"2017-01-15","end":"2017-01-16"}', 'application/json')
  t.equal(otherType.status, 400, 'only a form body is read')
  t.equal(otherType.json.error?.type, 'DateParseError')

  const withParameters = await search('', 'start=2017-01-15&end=2017-01-16', 'Application/X-WWW-Form-URLEncoded; charset=UTF-8')
  t.same(withParameters.json.alerts?.map((a) => a.id), ['form0001'], 'the media type, whatever its case and parameters')
  const lookalike = await search('', 'start=2017-01-15&end=2017-01-16', 'application/x-www-form-urlencoded-not')
  t.equal(lookalike.status, 400, 'another media type that starts the same is not a form')
})

t.test('a form body over the limit is 413, a bad form is a date error', async (t) => {
  const { app } = await build(t)
  const big = await app.inject({
    method: 'GET',
    url: ALERT_URL,
    headers: { ...BEARER.read, 'content-type': 'application/x-www-form-urlencoded' },
    payload: `start=2017-01-15&end=2017-01-16&pad=${'x'.repeat(MAX_FORM_BYTES)}`
  })
  assertError(t, big, 413, 'PayloadTooLargeError')
  const bad = await app.inject({
    method: 'GET',
    url: ALERT_URL,
    headers: { ...BEARER.read, 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'start=%E0%A4%A&end=yesterday'
  })
  assertError(t, bad, 400, 'DateParseError')
})
