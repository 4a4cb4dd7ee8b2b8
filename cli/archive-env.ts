// What the commands share: their arguments and usage errors, the S3 part of the service's
// configuration (read from the same environment variables) and the [start, end) of the days asked for.
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'
import { loadConfig, readEnv, ConfigError, type Config } from '../config.js'
import { ServiceError } from '../errors/index.js'
import { parseRange, type TimeRange } from '../services/search.js'

export class UsageError extends Error {}

/**
 * The service's S3 settings. The commands serve nothing and call no Threat Stack: its key and
 * the tokens are not asked for.
 * @throws UsageError naming the variable that is wrong
 */
export function s3Config (env: Record<string, string | undefined> = readEnv()): Config['s3'] {
  try {
    return loadConfig({ THREATSTACK_API_KEY: 'not-used-by-this-command', ...env, AUTH_MODE: 'none' }).s3
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message)
    throw err
  }
}

/**
 * The whole configuration of a command that calls Threat Stack as well (backfill, reconcile):
 * serving nothing, it needs no tokens. @throws UsageError naming the variable that is wrong
 */
export function commandConfig (env: Record<string, string | undefined> = readEnv()): Config {
  try {
    return loadConfig({ ...env, AUTH_MODE: 'none' })
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message)
    throw err
  }
}

/** @throws UsageError */
export function rangeOf (start: string | undefined, end: string | undefined): TimeRange {
  if (start === undefined || end === undefined) throw new UsageError('--start and --end are required')
  try {
    return parseRange(start, end)
  } catch (err) {
    throw new UsageError(err instanceof ServiceError ? err.message : String(err))
  }
}

/** A positive integer option. @throws UsageError */
export function intOption (name: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} must be an integer from 1 to ${max}`)
  return n
}

/** One status line: rewritten in place on a terminal, a plain line otherwise only when `final`. */
export function statusLine (stream: NodeJS.WriteStream): { show: (line: string) => void, done: () => void } {
  let shown = false
  return {
    show: (line) => {
      if (stream.isTTY !== true) return
      stream.write(`\r\x1b[2K${line}`)
      shown = true
    },
    done: () => {
      if (shown) stream.write('\r\x1b[2K')
      shown = false
    }
  }
}

export interface UsageExits {
  fail: (message: string, withUsage?: boolean) => never
  usage: <T>(fn: () => T) => T
}

/**
 * A command's way out on bad input: its message and the usage on stderr, exit 2; and `usage(fn)`,
 * which runs argument checks and ends the command that way on a UsageError. Declare the result
 * as `const exits: UsageExits`: only then does the compiler know that `exits.fail` ends the command.
 */
export function usageExits (text: string): UsageExits {
  const fail = (message: string, withUsage = true): never => {
    process.stderr.write(withUsage ? `${message}\n\n${text}\n` : `${message}\n`)
    process.exit(2)
  }
  return {
    fail,
    usage: (fn) => {
      try {
        return fn()
      } catch (err) {
        if (err instanceof UsageError) fail(err.message)
        throw err
      }
    }
  }
}

const HELP = { help: { type: 'boolean', short: 'h' } } as const

type CommandArgs<O extends ParseArgsOptionsConfig, P extends boolean> =
  ReturnType<typeof parseArgs<{ options: O & typeof HELP, allowPositionals: P, strict: true }>>

/**
 * A command's arguments, parsed strictly by node:util's parseArgs and typed from `options`.
 * Every command has -h/--help: the usage on stdout, exit 0. An argument parseArgs rejects
 * ends the command with its message and the usage, exit 2.
 */
export function commandArgs<const O extends ParseArgsOptionsConfig, const P extends boolean = false> (
  text: string, options: O, config?: { allowPositionals: P }
): CommandArgs<O, P> {
  const exits: UsageExits = usageExits(text)
  let parsed: CommandArgs<O, P>
  try {
    parsed = parseArgs({ options: { ...options, ...HELP }, allowPositionals: config?.allowPositionals ?? false as P, strict: true })
  } catch (err) {
    exits.fail(err instanceof Error ? err.message : String(err))
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(`${text}\n`)
    process.exit(0)
  }
  return parsed
}
