// What one connection has handed to its socket and not yet written out, and the bound on it: the
// pump sends a client's chunks only while there is room, so a slow client holds at most
// `maxBufferedBytes` plus one chunk (and small control messages) of the server's memory. Control
// answers are not held back, but a client that sends and never reads is cut off past a bound.
import { encodeServerMessage, type ServerMessage } from '../../shared/protocol.js';
import type { Logger } from '../log.js';

/** What a connection needs of its socket (a `ws` WebSocket has it). */
export interface SessionSocket {
  send(data: Uint8Array, callback: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
}

export interface OutboxContext {
  maxBufferedBytes: number;
  /** The most bytes any connection had buffered (a server-wide gauge). */
  stats: { maxBufferedBytes: number };
  /** Wakes the pump: there is room again. */
  kick: () => void;
  log: Logger;
  /** The socket failed or was cut off: the connection is over. */
  onBroken: () => void;
}

export class Outbox {
  private buffered = 0;
  /** Bytes of chunks being read for this client: counted against the bound before they exist. */
  private reserved = 0;
  private closed = false;
  /** Where messages go: the WebSocket, or the connection's HTTP stream once the client switched to it. */
  private sink: Pick<SessionSocket, 'send'>;

  constructor(private readonly socket: SessionSocket, private readonly ctx: OutboxContext) {
    this.sink = socket;
  }

  /** Sends every later message through `sink` (the HTTP stream); the WebSocket stays for the close. */
  switchTo(sink: Pick<SessionSocket, 'send'>): void {
    this.sink = sink;
  }

  /** Bytes handed to the socket and not yet written out. */
  get bufferedBytes(): number { return this.buffered; }

  /** Room for another chunk: what is buffered and being read is under the bound. */
  hasRoom(): boolean {
    return !this.closed && this.buffered + this.reserved < this.ctx.maxBufferedBytes;
  }

  /** Counts a chunk being read against the bound until `release` is called. */
  reserve(bytes: number): () => void {
    this.reserved += bytes;
    return () => { this.reserved -= bytes; };
  }

  /** A control message (an answer, an error, a notice). */
  control(message: ServerMessage): void {
    if (this.closed) return;
    // Answers pile up only for a client that sends and never reads: past a bound, it is cut off.
    if (this.buffered > 4 * this.ctx.maxBufferedBytes + 1024 * 1024) {
      this.ctx.log.warn('client does not read its answers: closing', { buffered: this.buffered });
      this.close(1008, 'not reading');
      return;
    }
    this.send(encodeServerMessage(message).buffer);
  }

  /** Hands bytes to the socket; `written` is called once it has written them (or failed to). */
  send(bytes: Uint8Array, written?: () => void): void {
    if (this.closed) {
      written?.();
      return;
    }
    this.buffered += bytes.length;
    if (this.buffered > this.ctx.stats.maxBufferedBytes) this.ctx.stats.maxBufferedBytes = this.buffered;
    this.sink.send(bytes, (error) => {
      this.buffered -= bytes.length;
      // Written out (or failed for good): nothing reads the buffer any more.
      written?.();
      if (error) {
        if (!this.closed) this.ctx.log.debug('send failed', { error: error.message });
        this.closed = true;
        this.ctx.onBroken();
        return;
      }
      if (this.buffered < this.ctx.maxBufferedBytes) this.ctx.kick();
    });
  }

  /** Closes the socket (a policy close: 1002, 1008) and ends the connection. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close(code, reason);
    this.ctx.onBroken();
  }

  /** The connection ended elsewhere (the socket closed): nothing more is sent. */
  ended(): void {
    this.closed = true;
  }
}
