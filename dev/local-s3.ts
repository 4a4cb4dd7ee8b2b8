// A real S3-protocol server on loopback (s3rver on a folder), for `npm run dev`, tests and benchmarks.
import S3rver from 's3rver'

/** s3rver's fixed credentials. It rejects an unknown access key id but does not verify signatures. */
export const LOCAL_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }

export interface LocalS3 {
  /** The endpoint to configure as AWS_ENDPOINT_URL_S3. */
  readonly endpoint: string
  readonly port: number
  close (): Promise<void>
}

export async function startLocalS3 (options: { directory: string, buckets: string[], port?: number }): Promise<LocalS3> {
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    configureBuckets: options.buckets.map((name) => ({ name, configs: [] }))
  })
  const { port } = await server.run()
  let closed = false
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    async close () {
      if (closed) return
      closed = true
      await server.close()
    }
  }
}

/**
 * fauxqs: a second, independent S3 implementation (in memory), so that behaviour that rests
 * on listing order and paging is proven against two servers, not one server's quirks.
 */
export async function startFauxqsS3 (options: { buckets: string[] }): Promise<LocalS3> {
  const { startFauxqs } = await import('fauxqs')
  const server = await startFauxqs({ port: 0, logger: false, host: '127.0.0.1' })
  for (const name of options.buckets) server.createBucket(name)
  let closed = false
  return {
    endpoint: server.address,
    port: server.port,
    async close () {
      if (closed) return
      closed = true
      await server.stop()
    }
  }
}
