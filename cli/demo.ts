// npm run demo [-- --url http://localhost:3000]: shows the service at work against a running
// `npm run dev`. Tokens: DEMO_INGEST_TOKEN and DEMO_READ_TOKEN, else the dev tokens.
import { DEMO_DEFAULTS, runDemo } from '../dev/demo.js'
import { commandArgs } from './archive-env.js'

const USAGE = `Usage: npm run demo [-- --url <base URL>]

Posts a few sample webhooks to a running service (npm run dev), then reads them back by id
and by time range, printing each call and its answer. Exit code 0 when every step answered
as expected.

  --url <base URL>   the service (default: DEMO_URL, else http://localhost:$PORT, PORT
                     defaulting to ${new URL(DEMO_DEFAULTS.baseUrl).port}, as npm run dev does)
  -h, --help         this text

Tokens: DEMO_INGEST_TOKEN and DEMO_READ_TOKEN, else the dev tokens npm run dev uses.`

const { values } = commandArgs(USAGE, { url: { type: 'string' } })
const port = process.env.PORT !== undefined && process.env.PORT.trim() !== '' ? process.env.PORT.trim() : new URL(DEMO_DEFAULTS.baseUrl).port
const baseUrl = values.url ?? process.env.DEMO_URL ?? `http://localhost:${port}`
try {
  const ok = await runDemo({
    baseUrl,
    ingestToken: process.env.DEMO_INGEST_TOKEN ?? DEMO_DEFAULTS.ingestToken,
    readToken: process.env.DEMO_READ_TOKEN ?? DEMO_DEFAULTS.readToken,
    print: (line) => { process.stdout.write(`${line}\n`) }
  })
  process.exitCode = ok ? 0 : 1
} catch (err) {
  process.stderr.write(`Could not reach the service at ${baseUrl} (${(err as Error).message}). Start it first: npm run dev\n`)
  process.exitCode = 1
}
