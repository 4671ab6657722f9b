// An archive in S3-compatible object storage (AWS S3, Ceph RGW, MinIO, …), read with the AWS SDK v3:
// objects listed page by page, heads and frames read with ranged GETs, a bounded number at once,
// each retried with backoff on 5xx, throttling and reset connections (the SDK's standard retries),
// every response body read to its end or destroyed. Credentials, region and profile come from the
// usual AWS environment; `endpoint` (with path-style addressing) for stores other than AWS.
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CodedError } from '../../shared/coded-error.js';
import type { FileStamp } from '../../shared/index-format.js';
import { byPath } from '../index/path-order.js';
import type { ByteSource } from '../index/frame-table.js';
import { readRuns, type RangeRead, type ReadRun } from './read-runs.js';

/** A frame read waiting for its GET. */
interface PendingRead extends RangeRead {
  into: Uint8Array;
  at: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const SCHEME = 's3://';

/** `s3://bucket/prefix` → bucket and prefix (no slashes at its ends), or undefined for anything else. */
export function parseS3Url(url: string): { bucket: string; prefix: string } | undefined {
  if (!url.startsWith(SCHEME)) return undefined;
  const rest = url.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new CodedError('BAD_OPTION', `not an S3 bucket name: ${JSON.stringify(bucket)}`);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  return { bucket, prefix };
}

export function isS3Url(url: string): boolean {
  return url.startsWith(SCHEME);
}

/** Where an archive's index is saved unless --index-dir says: the user's cache, by bucket and prefix. */
export function archiveIndexDir(archive: S3Archive): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'dicomstream', 'index', archive.bucket, ...archive.root.slice(SCHEME.length + archive.bucket.length).split('/').filter(Boolean));
}

export interface S3ArchiveOptions {
  /** A store other than AWS (Ceph RGW, MinIO): its URL; path-style addressing is used then. */
  endpoint?: string;
  /** GETs at once, over all reads. */
  maxConcurrency?: number;
  /** Tries of each request (the SDK's standard retry mode, exponential backoff). */
  maxAttempts?: number;
  /** A request with no byte for this long is abandoned (and tried again). Default 10 s. */
  idleTimeoutMs?: number;
}

/** Reads at least this much of an object while indexing: a head, or several fragment headers, in one GET. */
const MIN_INDEX_READ = 64 * 1024;

export class S3Archive {
  /** The archive's root as a path: `s3://bucket/prefix`; objects' paths are below it. */
  readonly root: string;
  readonly bucket: string;
  private readonly prefix: string;
  private readonly client: S3Client;
  private readonly maxConcurrency: number;
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  /** Reads asked for in this turn of the event loop, sent together at its end. */
  private readonly pending: PendingRead[] = [];
  /** GET requests made (for metrics and the benchmarks' GETs per frame). */
  gets = 0;

  constructor(url: string, options: S3ArchiveOptions = {}) {
    const location = parseS3Url(url);
    if (!location) throw new CodedError('BAD_OPTION', `not an s3:// URL: ${url}`);
    this.bucket = location.bucket;
    this.prefix = location.prefix;
    this.root = `${SCHEME}${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.maxConcurrency = options.maxConcurrency ?? 16;
    this.client = new S3Client({
      ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
      region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      maxAttempts: options.maxAttempts ?? 4,
      // Without them a store that stops answering holds each read (and its read slot) for ever.
      requestHandler: { connectionTimeout: Math.min(options.idleTimeoutMs ?? 10_000, 3000), socketTimeout: options.idleTimeoutMs ?? 10_000 },
      // Stores other than AWS answer a streamed PutObject with 411 unless checksums are asked for only when required.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** The object key of a path below the root. */
  keyOf(path: string): string {
    const head = `${SCHEME}${this.bucket}/`;
    if (!path.startsWith(head)) throw new CodedError('FILE_OUTSIDE_ROOT', `${path} is not in bucket ${this.bucket}`);
    return path.slice(head.length);
  }

  /**
   * Every object under the prefix as a file stamp (path, size, last modified), in key order, page
   * by page. Objects under a folder whose name starts with '.' (an index kept in the bucket) and
   * folder markers (keys ending in '/') are left out.
   */
  async list(): Promise<FileStamp[]> {
    const out: FileStamp[] = [];
    let token: string | undefined;
    const prefix = this.prefix ? `${this.prefix}/` : '';
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const key = o.Key ?? '';
        const below = key.slice(prefix.length);
        if (!below || key.endsWith('/') || below.split('/').some((part) => part.startsWith('.'))) continue;
        out.push({ path: `${SCHEME}${this.bucket}/${key}`, size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0, ...(o.ETag ? { etag: o.ETag } : {}) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    out.sort(byPath);
    return out;
  }

  /**
   * Bytes offset..offset+length of an object into `into` at `at`; with `etag`, of that version only
   * (another gets FILE_CHANGED, never its bytes). Reads asked for in the same turn of the event loop
   * that lie close together in one object are answered by one ranged GET (read-runs.ts).
   */
  read(path: string, offset: number, length: number, into: Uint8Array, at: number, etag?: string): Promise<void> {
    if (length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ key: this.keyOf(path), ...(etag ? { etag } : {}), offset, length, into, at, resolve, reject });
      // Once the reads of this turn are all asked for (a frame's fragments, a run of frames read ahead).
      if (this.pending.length === 1) setImmediate(() => this.sendPending());
    });
  }

  /** The reads asked for since the last turn, as few GETs as their places allow. */
  private sendPending(): void {
    const reads = this.pending.splice(0);
    for (const run of readRuns(reads)) void this.slot(() => this.getRun(run));
  }

  /** One ranged GET for a run of reads, each piece of the body copied as it comes into the reads it belongs to. */
  private async getRun(run: ReadRun<PendingRead>): Promise<void> {
    let got: number;
    try {
      got = await this.getBody(run.key, `bytes=${run.start}-${run.end - 1}`, run.etag, (chunk, before) => {
        if (before + chunk.length > run.end - run.start) throw new CodedError('FILE_CHANGED', 'the store sent more bytes than the range asked for');
        const from = run.start + before;
        const to = from + chunk.length;
        for (const r of run.reads) {
          const lo = Math.max(from, r.offset);
          const hi = Math.min(to, r.offset + r.length);
          if (lo < hi) r.into.set(chunk.subarray(lo - from, hi - from), r.at + lo - r.offset);
        }
      });
    } catch (e) {
      for (const r of run.reads) r.reject(e);
      return;
    }
    for (const r of run.reads) {
      if (r.offset + r.length <= run.start + got) r.resolve();
      else r.reject(new CodedError('FILE_CHANGED', `the object is shorter than its index (${Math.max(0, run.start + got - r.offset)} of ${r.length} bytes at ${r.offset})`));
    }
  }

  /** An object as the indexer reads it: reads of at least 64 KiB, the last one kept for the next. */
  source(path: string, size: number, etag?: string): ByteSource {
    let last: { offset: number; bytes: Uint8Array } | undefined;
    return {
      size,
      read: async (offset, length) => {
        const end = Math.min(offset + length, size);
        if (last && offset >= last.offset && end <= last.offset + last.bytes.length) {
          return last.bytes.subarray(offset - last.offset, end - last.offset);
        }
        const want = Math.min(Math.max(end - offset, MIN_INDEX_READ), size - offset);
        if (want <= 0) return new Uint8Array(0);
        const bytes = Buffer.allocUnsafe(want);
        last = { offset, bytes: bytes.subarray(0, await this.get(path, offset, want, bytes, 0, etag)) };
        return last.bytes.subarray(0, end - offset);
      },
    };
  }

  /** The whole object, to `write` in pieces as they come (its backpressure holds the GET); with `etag`, of that version only. */
  async pipe(path: string, write: (chunk: Uint8Array) => Promise<void>, etag?: string): Promise<void> {
    await this.slot(() => this.getBody(this.keyOf(path), undefined, etag, write));
  }

  /** A whole (small) object's bytes, or undefined when there is none: the index's files kept in a bucket. */
  async getObject(path: string): Promise<Uint8Array | undefined> {
    return this.slot(async () => {
      this.gets++;
      try {
        const answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(path) }));
        return (await answer.Body?.transformToByteArray()) ?? new Uint8Array(0);
      } catch (e) {
        if (statusOf(e) === 404) return undefined;
        throw e;
      }
    });
  }

  /** Writes an object whole; with `onlyIfAbsent`, only when there is none yet (If-None-Match), else resolves false. */
  async putObject(path: string, bytes: Uint8Array, options: { onlyIfAbsent?: boolean } = {}): Promise<boolean> {
    try {
      await this.slot(() => this.client.send(new PutObjectCommand({
        Bucket: this.bucket, Key: this.keyOf(path), Body: bytes, ...(options.onlyIfAbsent ? { IfNoneMatch: '*' } : {}),
      })));
      return true;
    } catch (e) {
      // 412: there is one; 409: another PUT of it is under way.
      if (options.onlyIfAbsent && (statusOf(e) === 412 || statusOf(e) === 409)) return false;
      throw e;
    }
  }

  async deleteObject(path: string): Promise<void> {
    await this.slot(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(path) })));
  }

  /** An object's ETag (changes with every new version), or undefined when there is none. */
  async headObject(path: string): Promise<string | undefined> {
    try {
      return (await this.slot(() => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(path) })))).ETag ?? '';
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  }

  close(): void {
    this.client.destroy();
  }

  /** One ranged GET into `into` at `at` (for the indexer's reads, which come one after the other); resolves with the bytes received. */
  private get(path: string, offset: number, length: number, into: Uint8Array, at: number, etag?: string): Promise<number> {
    return this.slot(() => this.getBody(this.keyOf(path), `bytes=${offset}-${offset + length - 1}`, etag, (chunk, got) => {
      if (got + chunk.length > length) throw new CodedError('FILE_CHANGED', 'the store sent more bytes than the range asked for');
      into.set(chunk, at + got);
    }));
  }

  /**
   * One GET (of `range`, or of the whole object), each piece of its body handed to `each` as it
   * comes with the bytes before it (the SDK's own collecting of a body copies it again for every
   * piece); the body is read to its end or destroyed. Resolves with the bytes received.
   */
  private async getBody(key: string, range: string | undefined, etag: string | undefined, each: (chunk: Uint8Array, got: number) => void | Promise<void>): Promise<number> {
    this.gets++;
    let answer: GetObjectCommandOutput;
    try {
      answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: range } : {}), ...(etag ? { IfMatch: etag } : {}) }));
    } catch (e) {
      throw versionError(e) ?? e;
    }
    const body = answer.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    if (!body) return 0;
    let got = 0;
    try {
      for await (const chunk of body) {
        await each(chunk, got);
        got += chunk.length;
      }
    } catch (e) {
      body.destroy?.();
      throw e;
    }
    return got;
  }

  /** Runs `work` when fewer than maxConcurrency GETs are running. */
  private async slot<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxConcurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await work();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

/** The store's answer that the object is not the indexed version (deleted, shorter, replaced), as FILE_CHANGED. */
function versionError(e: unknown): CodedError<'FILE_CHANGED'> | undefined {
  const status = statusOf(e);
  if (status === 404) return new CodedError('FILE_CHANGED', 'the object was deleted since it was indexed');
  if (status === 416) return new CodedError('FILE_CHANGED', 'the object is shorter than its index');
  if (status === 412) return new CodedError('FILE_CHANGED', 'the object was replaced since it was indexed');
  return undefined;
}

/** The HTTP status of the store's answer in an SDK error, if it got one. */
function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}
