// Objects as bytes (the table tier's Parquet parts) and deletions; SDK failures become S3ClientError.
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3'
import { call, stateObjectInput, toS3ClientError, type Store } from './storage.js'

/** Writes `body` as is, replacing what is there. @throws S3ClientError */
export async function putBytes (store: Store, key: string, body: Uint8Array | string, contentType: string): Promise<void> {
  try {
    await call(store, async (deadline) => store.s3.send(new PutObjectCommand(stateObjectInput(store, key, body, contentType)), { abortSignal: deadline }))
  } catch (err) {
    throw toS3ClientError(err)
  }
}

/** The object's bytes; undefined when there is no such key. @throws S3ClientError */
export async function getBytes (store: Store, key: string): Promise<Uint8Array | undefined> {
  try {
    return await call(store, async (deadline) => {
      const res = await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: deadline })
      return await (res.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array()))
    })
  } catch (err) {
    if (err instanceof S3ServiceException && err.name === 'NoSuchKey') return undefined
    throw toS3ClientError(err)
  }
}

/** The keys and ETags under `prefix` (all pages). @throws S3ClientError */
export async function listObjects (store: Store, prefix: string): Promise<Array<{ key: string, etag: string, size: number }>> {
  const out: Array<{ key: string, etag: string, size: number }> = []
  let startAfter: string | undefined
  for (let page = 0; page < 1_000_000; page++) {
    try {
      const res = await call(store, async (deadline) => store.s3.send(new ListObjectsV2Command({
        Bucket: store.bucket, Prefix: prefix, ...(startAfter !== undefined && { StartAfter: startAfter })
      }), { abortSignal: deadline }))
      for (const o of res.Contents ?? []) if (o.Key !== undefined) out.push({ key: o.Key, etag: o.ETag ?? '', size: o.Size ?? 0 })
      startAfter = res.Contents?.at(-1)?.Key
      if (res.IsTruncated !== true || startAfter === undefined) return out
    } catch (err) {
      throw toS3ClientError(err)
    }
  }
  return out
}

/** Deletes the keys, one request each (the table tier deletes a stale part or two at most). @throws S3ClientError */
export async function deleteKeys (store: Store, keys: string[]): Promise<void> {
  for (const key of keys) {
    try {
      await call(store, async (deadline) => store.s3.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: key }), { abortSignal: deadline }))
    } catch (err) {
      throw toS3ClientError(err)
    }
  }
}
