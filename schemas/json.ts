// JSON text as received: limits checked before it is parsed, and where each alert lies in it.

/** Deepest nesting of objects and arrays a request body may have. Alerts are a few levels deep. */
export const MAX_JSON_DEPTH = 32

/**
 * Whether JSON text nests objects and arrays deeper than `max`. One pass over the text,
 * brackets inside strings ignored; the text need not be valid JSON (parsing says that).
 * Deep nesting must be refused before parsing: serializing such a value again to store it
 * would exhaust the stack.
 */
export function exceedsJsonDepth (text: string, max: number = MAX_JSON_DEPTH): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: the next character is escaped
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return false
}

/** A key found twice in one object: where (a JSON pointer to the object) and which. */
export interface DuplicateKey { path: string, key: string }

export interface AlertSources {
  /** The exact text of each alert: every element of a top-level `alerts` array, else the whole value. */
  sources: string[]
  /** The first object that holds a key more than once, anywhere in the text. */
  duplicate: DuplicateKey | undefined
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d

/**
 * Where each alert of a webhook body lies in its JSON text, so that it can be stored exactly as
 * it was sent (a parsed and serialized again value would lose digits of big numbers, escapes,
 * spacing, and keys given twice). One pass, the same cut as alertsOf: an object with `alerts`
 * is the batch form. The text must be JSON that JSON.parse accepts, nested at most
 * MAX_JSON_DEPTH (exceedsJsonDepth), as every body is by the time it is validated.
 */
export function alertSources (text: string): AlertSources {
  const n = text.length
  let i = 0
  let duplicate: DuplicateKey | undefined

  const spaces = (): void => { while (i < n && isSpace(text.charCodeAt(i))) i++ }
  /** A string token, quotes included. */
  const string = (): string => {
    const start = i++
    while (i < n) {
      const c = text.charCodeAt(i++)
      if (c === 0x5c) i++
      else if (c === 0x22) break
    }
    return text.slice(start, i)
  }
  const keyOf = (raw: string): string => raw.includes('\\') ? JSON.parse(raw) as string : raw.slice(1, -1)
  const pointer = (path: string, key: string): string => `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`

  /** Steps over one value; `onMember` may take over an object member's value (it returns true then). */
  function value (path: string, onMember?: (key: string) => boolean): void {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      string()
    } else if (c === 0x7b) {
      i++
      const keys = new Set<string>()
      spaces()
      while (i < n && text.charCodeAt(i) !== 0x7d) {
        const key = keyOf(string())
        if (keys.has(key)) duplicate ??= { path: path === '' ? '/' : path, key }
        keys.add(key)
        spaces()
        i++ // :
        spaces()
        if (onMember?.(key) !== true) value(pointer(path, key))
        spaces()
        if (text.charCodeAt(i) === 0x2c) { i++; spaces() }
      }
      i++
    } else if (c === 0x5b) {
      i++
      spaces()
      for (let index = 0; i < n && text.charCodeAt(i) !== 0x5d; index++) {
        value(`${path}/${index}`)
        spaces()
        if (text.charCodeAt(i) === 0x2c) { i++; spaces() }
      }
      i++
    } else {
      // A number, true, false or null: up to the next delimiter.
      while (i < n && !isSpace(text.charCodeAt(i)) && !',]}'.includes(text.charAt(i))) i++
    }
  }

  // A byte order mark is not part of the value (JSON.parse would refuse it; the body parser drops it).
  if (text.charCodeAt(0) === 0xfeff) i++
  spaces()
  const start = i
  let batch: string[] | undefined
  value('', (key) => {
    if (key !== 'alerts' || text.charCodeAt(i) !== 0x5b) return false
    batch = []
    i++
    spaces()
    for (let index = 0; i < n && text.charCodeAt(i) !== 0x5d; index++) {
      const from = i
      value(`/alerts/${index}`)
      batch.push(text.slice(from, i))
      spaces()
      if (text.charCodeAt(i) === 0x2c) { i++; spaces() }
    }
    i++
    return true
  })
  return { sources: batch ?? [text.slice(start, i)], duplicate }
}
