// npm run demo [-- --url http://localhost:3000]: shows the service at work against a running
// `npm run dev`. Tokens: DEMO_INGEST_TOKEN and DEMO_READ_TOKEN, else the dev tokens.
import { parseArgs } from 'node:util'
import { DEMO_DEFAULTS, runDemo } from '../dev/demo.js'

const { values } = parseArgs({ options: { url: { type: 'string' } } })
const baseUrl = values.url ?? process.env.DEMO_URL ?? DEMO_DEFAULTS.baseUrl
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
