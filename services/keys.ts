// The S3 key layout, unchanged from the Python service so its archives stay readable.
//   [prefix/]webhooks/YYYY/MM/DD/HH/mm/<id>   webhook record, UTC minute of created_at
//   [prefix/]alerts/<id[0:2]>/<id[2:4]>/<id>  full alert

function withPrefix (prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}/${key}`
}

/** `YYYY/MM/DD/HH/mm` of a time in UTC. */
export function minutePath (ms: number): string {
  const iso = new Date(ms).toISOString() // YYYY-MM-DDTHH:mm:ss.sssZ for years 0-9999
  return `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}/${iso.slice(14, 16)}`
}

export function webhookKey (prefix: string, id: string, createdAtMs: number): string {
  return withPrefix(prefix, `webhooks/${minutePath(createdAtMs)}/${id}`)
}

export function alertKey (prefix: string, id: string): string {
  return withPrefix(prefix, `alerts/${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`)
}
