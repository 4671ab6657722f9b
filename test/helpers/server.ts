// Starts a real server on 127.0.0.1 port 0 for a test, and raw protocol helpers for tests that
// must speak below the client API (malformed messages, a client that stops reading).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createLogger, startServer, type Catalogue, type IndexedFile, type RunningServer, type ServerOptions } from '../../server/index.js';
import { connect, type DicomStreamClient } from '../../web-client/index.js';
import { decodeServerMessage, encodeClientMessage, PROTOCOL_VERSION, type ClientMessage, type DecodedServerMessage } from '../../shared/protocol.js';
import { filesDir } from './corpus.js';

/** A server on 127.0.0.1, its index in a temporary folder of its own unless `options` say otherwise. */
export async function withServer<T>(options: Partial<ServerOptions>, use: (server: RunningServer) => Promise<T>): Promise<T> {
  const indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-index-'));
  const server = await startServer({ root: filesDir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir, ...options });
  try {
    return await use(server);
  } finally {
    await server.close();
    rmSync(indexDir, { recursive: true, force: true });
  }
}

/** Every file the catalogue serves (opens every series). */
export async function servedFiles(catalogue: Catalogue): Promise<IndexedFile[]> {
  const out: IndexedFile[] = [];
  for (const study of catalogue.listStudies(0, catalogue.studyCount).studies) {
    for (const s of study.series) out.push(...((await catalogue.openSeries(s.seriesInstanceUid))?.files.values() ?? []));
  }
  return out;
}

export function client(server: RunningServer): Promise<DicomStreamClient> {
  return connect(server.url, { WebSocket });
}

/** A bare socket speaking the protocol by hand; messages are queued and awaited in order. */
export class RawClient {
  readonly ws: WebSocket;
  private readonly inbox: DecodedServerMessage[] = [];
  private readonly waiters: Array<(m: DecodedServerMessage) => void> = [];
  readonly closed: Promise<number>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data: Buffer) => {
      const m = decodeServerMessage(new Uint8Array(data));
      const w = this.waiters.shift();
      if (w) w(m); else this.inbox.push(m);
    });
    this.closed = new Promise((r) => this.ws.on('close', (code) => r(code)));
  }

  async open(hello = true): Promise<this> {
    await new Promise<void>((resolve, reject) => { this.ws.once('open', () => resolve()); this.ws.once('error', reject); });
    if (hello) {
      this.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName: 'raw' } });
      const welcome = await this.next();
      if (welcome.kind !== 'welcome') throw new Error(`expected welcome, got ${welcome.kind}`);
    }
    return this;
  }

  send(message: ClientMessage): void {
    this.ws.send(encodeClientMessage(message));
  }

  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  next(): Promise<DecodedServerMessage> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((r) => this.waiters.push(r));
  }

  /** Reads messages until one matches. */
  async until(match: (m: DecodedServerMessage) => boolean): Promise<DecodedServerMessage[]> {
    const seen: DecodedServerMessage[] = [];
    for (;;) {
      const m = await this.next();
      seen.push(m);
      if (match(m)) return seen;
    }
  }

  close(): void {
    this.ws.close();
  }
}
