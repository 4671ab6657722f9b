// The client's end of the HTTP stream (proto/README.md §9): the server's messages read from one
// streamed fetch response instead of the WebSocket, whose browser implementation receives several
// times slower. Each message comes behind its length (4 bytes, little-endian); a zero length is a
// keep-alive. The WebSocket still carries what the client sends.
import { CodedError } from '../shared/coded-error.js';
import { decodeServerMessage } from '../shared/protocol.js';

/** Larger than any message (frame chunks are at most the server's chunk size). */
const MAX_MESSAGE_BYTES = 1024 * 1024 * 1024;

/** A key of the client's own for its HTTP stream: 128 random bits, hex. */
export function httpStreamKey(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * GETs an HTTP stream and reads its first message: the reader of the rest, or why there is none.
 * `abort` cancels the GET (and later the stream); `timeoutMs` bounds the wait for the first message.
 */
export async function openHttpStream(url: string, abort: AbortController, timeoutMs: number): Promise<MessageReader | CodedError<'HTTP_STREAM_UNAVAILABLE'>> {
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const unavailable = (why: string) => {
    abort.abort();
    return new CodedError('HTTP_STREAM_UNAVAILABLE', `HTTP stream not used: ${why}`);
  };
  try {
    const response = await fetch(url, { signal: abort.signal, cache: 'no-store' });
    if (!response.ok || !response.body) return unavailable(`HTTP ${response.status}`);
    const reader = new MessageReader(response.body, MAX_MESSAGE_BYTES);
    const first = await reader.next();
    if (!first || decodeServerMessage(first).kind !== 'httpStreamOpened') return unavailable('not a dicomstream HTTP stream');
    return reader;
  } catch (e) {
    return unavailable((e as Error).message);
  } finally {
    clearTimeout(timer);
  }
}

/** Longer than any message: not a dicomstream stream (an HTML page, say). */
const tooLong = (length: number) => new CodedError('PROTOCOL_VIOLATION', `a message of ${length} bytes: not a dicomstream HTTP stream`);
const endedInside = () => new CodedError('CONNECTION_CLOSED', 'the HTTP stream ended inside a message');

/** Where a connection's HTTP stream is: the WebSocket URL's path + `/http-stream`, over http(s). */
export function httpStreamUrl(webSocketUrl: string, key: string): string {
  const url = new URL(webSocketUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/http-stream`;
  // The WebSocket URL's own query stays (a load balancer hashing on it sends both to one server).
  url.searchParams.set('key', key);
  url.hash = '';
  return url.href;
}

/**
 * Cuts a byte stream into its messages. Each message gets a buffer of its own (a frame's may be
 * transferred to a decode worker), filled straight from the chunks it spans.
 */
export class MessageSplitter {
  private readonly head = new Uint8Array(4);
  private headFilled = 0;
  private message: Uint8Array | undefined;
  private filled = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Adds a chunk; returns the messages it completes, in order (keep-alives left out). */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let at = 0; at < chunk.length;) {
      if (!this.message) {
        const take = Math.min(4 - this.headFilled, chunk.length - at);
        this.head.set(chunk.subarray(at, at + take), this.headFilled);
        this.headFilled += take;
        at += take;
        if (this.headFilled < 4) break;
        this.headFilled = 0;
        const length = (this.head[0]! | (this.head[1]! << 8) | (this.head[2]! << 16)) + this.head[3]! * 0x1000000;
        if (length > this.maxMessageBytes) throw tooLong(length);
        if (length === 0) continue;
        this.message = new Uint8Array(length);
        this.filled = 0;
      }
      const take = Math.min(this.message.length - this.filled, chunk.length - at);
      this.message.set(chunk.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
      if (this.filled === this.message.length) {
        out.push(this.message);
        this.message = undefined;
      }
    }
    return out;
  }

  /** True between messages (a stream that ends here ended cleanly). */
  get atBoundary(): boolean {
    return !this.message && this.headFilled === 0;
  }
}

/** Bytes read at a time for headers and small messages (answers, errors, small frame chunks). */
const STAGING_BYTES = 64 * 1024;

/**
 * The messages of a fetch response's body, one at a time. Where the body is a byte stream
 * (browsers, Node) a large message (a frame) is read straight into its own buffer: the only copy
 * is the one out of the browser's network pipe. Headers and small messages go through a small
 * staging buffer; elsewhere the chunks are cut by a MessageSplitter (one more copy).
 */
export class MessageReader {
  private readonly byob: ReadableStreamBYOBReader | undefined;
  private readonly chunks: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private readonly splitter: MessageSplitter;
  private readonly queue: Uint8Array[] = [];
  private staging = new ArrayBuffer(STAGING_BYTES);
  private start = 0;
  private end = 0;

  constructor(body: ReadableStream<Uint8Array>, private readonly maxMessageBytes: number) {
    try {
      this.byob = body.getReader({ mode: 'byob' });
    } catch {
      this.chunks = body.getReader();
    }
    this.splitter = new MessageSplitter(maxMessageBytes);
  }

  /** The next message; undefined once the stream ended between messages; rejects if it ended inside one. */
  next(): Promise<Uint8Array | undefined> {
    return this.byob ? this.nextByob(this.byob) : this.nextChunked(this.chunks!);
  }

  /** Stops reading (the response is aborted by its fetch's signal). */
  cancel(): void {
    (this.byob ?? this.chunks)!.cancel().catch(() => undefined);
  }

  private async nextChunked(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<Uint8Array | undefined> {
    while (this.queue.length === 0) {
      const { done, value } = await reader.read();
      if (done) {
        if (!this.splitter.atBoundary) throw endedInside();
        return undefined;
      }
      for (const message of this.splitter.push(value)) this.queue.push(message);
    }
    return this.queue.shift();
  }

  private async nextByob(reader: ReadableStreamBYOBReader): Promise<Uint8Array | undefined> {
    for (;;) {
      if (this.end - this.start >= 4) {
        const length = new DataView(this.staging, this.start, 4).getUint32(0, true);
        if (length > this.maxMessageBytes) throw tooLong(length);
        const body = this.start + 4;
        if (length === 0) {
          this.start = body;
          continue;
        }
        if (this.end - body >= length) {
          this.start = body + length;
          return new Uint8Array(this.staging.slice(body, body + length));
        }
        if (length > STAGING_BYTES - 4) return this.readLarge(reader, length, body);
      }
      // More bytes wanted: what is left moves to the front, and the rest of the staging buffer is filled.
      if (this.start > 0) {
        new Uint8Array(this.staging).copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      const { done, value } = await reader.read(new Uint8Array(this.staging, this.end, STAGING_BYTES - this.end));
      if (value) this.staging = value.buffer as ArrayBuffer;
      if (done) {
        if (this.end === 0) return undefined;
        throw endedInside();
      }
      this.end += value!.byteLength;
    }
  }

  /** A message larger than the staging buffer: what was staged of it, then the rest read into place. */
  private async readLarge(reader: ReadableStreamBYOBReader, length: number, body: number): Promise<Uint8Array> {
    let buffer = new ArrayBuffer(length);
    let filled = this.end - body;
    new Uint8Array(buffer).set(new Uint8Array(this.staging, body, filled));
    this.start = this.end = 0;
    while (filled < length) {
      const { done, value } = await reader.read(new Uint8Array(buffer, filled, length - filled));
      if (done || !value) throw endedInside();
      buffer = value.buffer as ArrayBuffer;
      filled += value.byteLength;
    }
    return new Uint8Array(buffer);
  }
}
