// The HTTP stream (proto/README.md §9): a browser's WebSocket receives several times slower than a
// streamed fetch (Chromium moves each WebSocket message through a 128 KB pipe between its network
// service and the page), so a client may take the server's messages over one long GET response
// instead: each message exactly as on the WebSocket, behind its length (4 bytes, little-endian);
// a zero length is a keep-alive. The WebSocket still carries the client's messages, the pings and
// the close. A connection is offered a key in Welcome, the GET with that key attaches the stream
// (once), and the client's UseHttpStream switches the connection's outbox to it.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeServerMessage } from '../../shared/protocol.js';
import type { ClientAddressOf } from '../client-address.js';
import type { Logger } from '../log.js';
import type { SessionSocket } from './outbox.js';

export const HTTP_STREAM_PATH = '/http-stream';

export interface HttpStreamsOptions {
  /** The stream's path prefix: '' or the mount path ('/dicomstream'). */
  base: string;
  originAllowed: (origin: string | undefined) => boolean;
  /** A keep-alive record this often on a stream with nothing else to send (proxies cut idle responses); 0: never. */
  keepAliveMs: number;
  clientAddress: ClientAddressOf;
  log: Logger;
}

/** An offer made to one connection: the key it was given, until the GET comes or the connection ends. */
export interface HttpStreamOffer {
  readonly key: string;
  withdraw(): void;
}

/** A client's own key: 128 bits of its randomness, in hex. */
const KEY = /^[0-9a-f]{32}$/;
/** A GET may come before its connection's Hello is through (the client sends both at once): it waits this long. */
const WAIT_MS = 5000;
/** GETs waiting for their Hello, at most (each holds a socket). */
const MAX_WAITING = 1024;

/** A GET whose connection has not offered its key yet. */
interface Waiting { req: IncomingMessage; res: ServerResponse; timer: NodeJS.Timeout }

export class HttpStreams {
  private readonly offers = new Map<string, (sink: HttpStreamSink) => void>();
  /** Keys whose stream is attached, while their connection lasts: a second GET is refused at once. */
  private readonly spent = new Set<string>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly open = new Set<HttpStreamSink>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: HttpStreamsOptions) {
    if (options.keepAliveMs > 0) {
      this.timer = setInterval(() => { for (const sink of this.open) sink.keepAlive(); }, options.keepAliveMs);
      this.timer.unref();
    }
  }

  /** HTTP streams attached now. */
  get count(): number { return this.open.size; }

  /**
   * A key for one connection (the client's own, or 128 random bits): `attached` gets its stream
   * when the GET with it arrives, or at once if it came first. Undefined when the client's key is
   * not one (malformed, or another connection's).
   */
  offer(attached: (sink: HttpStreamSink) => void, clientKey = ''): HttpStreamOffer | undefined {
    // The key is the GET's only credential (its connection was authenticated): never guessable, never shared.
    const key = clientKey || randomBytes(16).toString('hex');
    if (!KEY.test(key) || this.offers.has(key) || this.spent.has(key)) return undefined;
    const withdraw = () => { this.offers.delete(key); this.spent.delete(key); };
    const early = this.waiting.get(key);
    if (early) {
      this.waiting.delete(key);
      clearTimeout(early.timer);
      this.spent.add(key);
      this.attach(early.req, early.res, attached);
      return { key, withdraw };
    }
    this.offers.set(key, attached);
    return { key, withdraw };
  }

  /** Answers `GET <base>/http-stream?key=…` and returns true; false for any other request. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const [path, query = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
    if (path !== this.options.base + HTTP_STREAM_PATH) return false;
    if (!this.options.originAllowed(req.headers.origin)) return refuse(res, 403, 'origin not allowed\n');
    const cors = corsOf(req);
    if (req.method !== 'GET') return refuse(res, 405, 'GET only\n', { ...cors, allow: 'GET' });
    const key = new URLSearchParams(query).get('key') ?? '';
    const attached = this.offers.get(key);
    if (attached) {
      this.offers.delete(key);
      this.spent.add(key);
      this.attach(req, res, attached, cors);
      return true;
    }
    // Perhaps its Hello is still on its way: the GET waits for it a little. Anything else (a used,
    // withdrawn or made-up key) ends with the same 404: nothing says which.
    if (!KEY.test(key) || this.spent.has(key) || this.waiting.has(key) || this.waiting.size >= MAX_WAITING) return refuse(res, 404, 'no such stream\n', cors);
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      refuse(res, 404, 'no such stream\n', cors);
    }, WAIT_MS);
    timer.unref();
    this.waiting.set(key, { req, res, timer });
    res.on('close', () => {
      if (this.waiting.get(key)?.res !== res) return;
      clearTimeout(timer);
      this.waiting.delete(key);
    });
    return true;
  }

  /** Answers the GET with the stream and hands it to its connection. */
  private attach(req: IncomingMessage, res: ServerResponse, attached: (sink: HttpStreamSink) => void, cors = corsOf(req)): void {
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, {
      ...cors,
      'content-type': 'application/octet-stream',
      'cache-control': 'no-store',
      // nginx would otherwise buffer the response (it is a stream: each message is wanted now).
      'x-accel-buffering': 'no',
    });
    const sink = new HttpStreamSink(res, () => this.open.delete(sink));
    this.open.add(sink);
    sink.send(encodeServerMessage({ httpStreamOpened: {} }).buffer, () => {});
    this.options.log.debug('HTTP stream attached', { from: this.options.clientAddress(req) });
    attached(sink);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const sink of this.open) sink.close();
    for (const { res, timer } of this.waiting.values()) {
      clearTimeout(timer);
      refuse(res, 503, 'server shutting down\n');
    }
    this.waiting.clear();
    this.offers.clear();
    this.spent.clear();
  }
}

/** One attached stream: where a connection's messages go once the client switched to it. */
export class HttpStreamSink implements SessionSocket {
  private ended = false;
  private wrote = false;
  private lostListener: (() => void) | undefined;

  constructor(private readonly res: ServerResponse, private readonly onEnd: () => void) {
    // The client went away (a closed tab, an aborted fetch) or the socket failed.
    res.on('close', () => {
      if (this.ended) return;
      this.ended = true;
      this.onEnd();
      this.lostListener?.();
    });
  }

  /** Calls `listener` if the stream ends other than by close(). */
  onLost(listener: () => void): void {
    this.lostListener = listener;
  }

  send(data: Uint8Array, written: (error?: Error) => void): void {
    if (this.ended) {
      written(new Error('HTTP stream closed'));
      return;
    }
    this.wrote = true;
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32LE(data.length, 0);
    // One write to the socket for the length and the message (writev).
    this.res.cork();
    this.res.write(length);
    this.res.write(data, (error) => written(error ?? undefined));
    this.res.uncork();
  }

  /** A zero-length record, when nothing was sent since the last call. */
  keepAlive(): void {
    if (!this.ended && !this.wrote) this.res.write(Buffer.alloc(4));
    this.wrote = false;
  }

  /** Ends the response (the connection is over). */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    this.res.end();
  }
}

/** CORS for a page's GET (its Origin was allowed). */
function corsOf(req: IncomingMessage): Record<string, string> {
  const origin = req.headers.origin;
  return origin === undefined ? {} : { 'access-control-allow-origin': origin, vary: 'Origin' };
}

function refuse(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): true {
  res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
  return true;
}
