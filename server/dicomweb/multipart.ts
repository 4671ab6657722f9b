// A multipart/related response (RFC 2387) written part by part with backpressure: each write waits
// for the socket to drain when Node's buffer is full, so a slow client holds a bounded amount of
// memory whatever it asked for; a client that goes away fails the pending write.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/**
 * A write that resolves once the response can take more (or rejects when it closed). `written`, if
 * given, is called once the socket has written the chunk (never if it failed): only then may the
 * chunk's buffer be reused.
 */
export type Write = (chunk: Uint8Array | string, written?: () => void) => Promise<void>;

export function writer(res: ServerResponse): Write {
  return (chunk, written) => {
    if (res.destroyed || res.writableEnded) return Promise.reject(new Error('the client went away'));
    if (res.write(chunk, whenWritten(written))) return Promise.resolve();
    return new Promise<void>((ok, fail) => {
      const done = (e?: Error) => { res.off('drain', drained); res.off('close', closed); if (e) fail(e); else ok(); };
      const drained = () => done();
      const closed = () => done(new Error('the client went away'));
      res.on('drain', drained);
      res.on('close', closed);
    });
  };
}

/**
 * A write or end callback that calls `written` once the socket has written the bytes (end's
 * callback comes on 'finish'), and never when they failed (the callback then gets an error).
 */
export function whenWritten(written: (() => void) | undefined): (e?: Error | null) => void {
  return written ? (e) => { if (!e) written(); } : () => undefined;
}

export class MultipartWriter {
  readonly boundary = newBoundary();
  private readonly write: Write;

  /** Sends the status line and headers: `multipart/related; type="<type>"; boundary=…`. */
  constructor(private readonly res: ServerResponse, type: string, headers: Record<string, string> = {}) {
    res.writeHead(200, { ...headers, 'content-type': `multipart/related; type="${type}"; boundary=${this.boundary}` });
    this.write = writer(res);
  }

  /** A whole answer of one part, sent at once with its Content-Length; `written` as for writer(). */
  static single(res: ServerResponse, type: string, contentType: string, bytes: Uint8Array, location?: string, written?: () => void): void {
    const boundary = newBoundary();
    const head = Buffer.from(partHead(boundary, contentType, bytes.length, location));
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    res.writeHead(200, { 'content-type': `multipart/related; type="${type}"; boundary=${boundary}`, 'content-length': head.length + bytes.length + tail.length });
    res.cork();
    res.write(head);
    res.write(bytes);
    res.end(tail, whenWritten(written));
    process.nextTick(() => res.uncork());
  }

  /** One part with its bytes; `written` as for writer(). */
  async part(contentType: string, bytes: Uint8Array, location?: string, written?: () => void): Promise<void> {
    await this.write(this.partHead(contentType, bytes.length, location));
    await this.write(bytes, written);
    await this.write('\r\n');
  }

  /** One part whose body `body` writes in pieces (a whole file), `length` bytes long. */
  async streamedPart(contentType: string, length: number, body: (write: Write) => Promise<void>, location?: string): Promise<void> {
    await this.write(this.partHead(contentType, length, location));
    await body(this.write);
    await this.write('\r\n');
  }

  end(): void {
    this.res.end(`--${this.boundary}--\r\n`);
  }

  private partHead(contentType: string, length: number, location: string | undefined): string {
    return partHead(this.boundary, contentType, length, location);
  }
}

/**
 * A boundary no part's bytes can be made to contain: 122 random bits. randomUUID draws them from a
 * pooled buffer of entropy, where a randomBytes call per answer was a system call per frame.
 */
function newBoundary(): string {
  return randomUUID();
}

function partHead(boundary: string, contentType: string, length: number, location: string | undefined): string {
  return `--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\n${location ? `Content-Location: ${location}\r\n` : ''}\r\n`;
}
