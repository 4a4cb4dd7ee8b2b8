// Limits on JSON text, checked before it is parsed.

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
