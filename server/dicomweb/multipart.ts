// A multipart/related response (RFC 2387) written part by part with backpressure: each write waits
// for the socket to drain when Node's buffer is full, so a slow client holds a bounded amount of
// memory whatever it asked for; a client that goes away fails the pending write.
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** A write that resolves once the response can take more (or rejects when it closed). */
export function writer(res: ServerResponse): (chunk: Uint8Array | string) => Promise<void> {
  return (chunk) => {
    if (res.destroyed || res.writableEnded) return Promise.reject(new Error('the client went away'));
    if (res.write(chunk)) return Promise.resolve();
    return new Promise<void>((ok, fail) => {
      const done = (e?: Error) => { res.off('drain', drained); res.off('close', closed); if (e) fail(e); else ok(); };
      const drained = () => done();
      const closed = () => done(new Error('the client went away'));
      res.on('drain', drained);
      res.on('close', closed);
    });
  };
}

export class MultipartWriter {
  readonly boundary = randomBytes(12).toString('hex');
  private readonly write: (chunk: Uint8Array | string) => Promise<void>;

  /** Sends the status line and headers: `multipart/related; type="<type>"; boundary=…`. */
  constructor(private readonly res: ServerResponse, type: string, headers: Record<string, string> = {}) {
    res.writeHead(200, { ...headers, 'content-type': `multipart/related; type="${type}"; boundary=${this.boundary}` });
    this.write = writer(res);
  }

  /** A whole answer of one part, sent at once with its Content-Length. */
  static single(res: ServerResponse, type: string, contentType: string, bytes: Uint8Array, location?: string): void {
    const boundary = randomBytes(12).toString('hex');
    const head = Buffer.from(partHead(boundary, contentType, bytes.length, location));
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    res.writeHead(200, { 'content-type': `multipart/related; type="${type}"; boundary=${boundary}`, 'content-length': head.length + bytes.length + tail.length });
    res.cork();
    res.write(head);
    res.write(bytes);
    res.end(tail);
    process.nextTick(() => res.uncork());
  }

  /** One part with its bytes. */
  async part(contentType: string, bytes: Uint8Array, location?: string): Promise<void> {
    await this.write(this.partHead(contentType, bytes.length, location));
    await this.write(bytes);
    await this.write('\r\n');
  }

  /** One part whose body `body` writes in pieces (a whole file), `length` bytes long. */
  async streamedPart(contentType: string, length: number, body: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>, location?: string): Promise<void> {
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

function partHead(boundary: string, contentType: string, length: number, location: string | undefined): string {
  return `--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\n${location ? `Content-Location: ${location}\r\n` : ''}\r\n`;
}
