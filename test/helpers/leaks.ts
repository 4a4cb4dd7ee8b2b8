// What no response may ever contain (SPEC "Errors"), as one assertion.
import type { Test } from 'tap'
import { SECRETS, TOKENS } from './build.js'

type Tap = Pick<Test, 'notMatch'>

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const FORBIDDEN: Array<[string, RegExp]> = [
  ['a stack line', /\bat [^\s]+ \(|\n\s+at /],
  ['a source path', /\/work\/|node_modules|[\w-]+\.(ts|js|mjs):\d+/],
  ['an upstream host or port', /127\.0\.0\.1|localhost|::1|:\d{4,5}\b/],
  ['an undici or system error', /\b(ECONN[A-Z]*|EPIPE|ETIMEDOUT|ENOTFOUND|UND_ERR_[A-Z_]+)\b|socket hang up|other side closed|fetch failed/i],
  ['an SDK message', /NoSuchBucket|NoSuchKey|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|specified bucket|\$metadata|AWS|Hawk/],
  ['upstream HTML', /<html|<\/|nginx/i],
  ['a secret', new RegExp([...Object.values(SECRETS), ...Object.values(TOKENS)].map(escape).join('|'))],
  ['S3RVER credentials', /S3RVER/]
]

/** What a response body says that it must not, or undefined when it is clean. */
export function findLeak (body: string): string | undefined {
  return FORBIDDEN.find(([, pattern]) => pattern.test(body))?.[0]
}

/** Asserts that a response body says nothing it must not. */
export function assertNoLeak (t: Tap, body: string, extra: string[] = []): void {
  for (const [what, pattern] of FORBIDDEN) t.notMatch(body, pattern, `no ${what} in the body`)
  for (const value of extra) t.notMatch(body, new RegExp(escape(value)), 'no extra secret in the body')
}
