// The client core: one WebSocket to a dicomstream server, requests matched to their answers,
// frames reassembled from chunks. Runs in browsers and in Node (pass `ws`'s WebSocket).
import {
  ErrorCode, PROTOCOL_VERSION, ProtocolError, decodeServerMessage, encodeClientMessage,
  type ClientMessage, type DecodedServerMessage, type FrameChunkHeader, type ImageAttributes, type SeriesManifest, type SeriesUpdated, type StudyList,
  type StudySummary, type Welcome,
  type GroupSettings,
} from '../shared/protocol.js';
export type { GroupSettings };
import { CodedError } from '../shared/coded-error.js';
import { FrameAssembler } from './frame-assembler.js';
import { FrameStream, type Frame, type FrameCallback, type RequestSummary } from './frame-stream.js';
import { MessageReader, httpStreamKey, httpStreamUrl, openHttpStream } from './http-stream.js';
import { messageBytes, type WebSocketConstructor, type WebSocketLike } from './socket.js';

export interface ConnectOptions {
  /** The WebSocket class; defaults to the global one (browsers). In Node, pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  clientName?: string;
  /** Give up connecting after this long. */
  timeoutMs?: number;
  /** Access token (static bearer token or JWT) for a server that asks for one. */
  token?: string;
  /**
   * Flow control: frame bytes the server may have in flight to this client before the client
   * grants more (like HTTP/2's window). Default 32 MiB; 0: none (the server's own bound holds).
   */
  window?: number;
  /**
   * Memory budget for the application's backlog: bytes of frames that arrived but that it has not
   * taken yet (not yet pulled from an iterator, or an onFrame promise, such as a decode, still
   * pending). While the backlog is over this, no more window is granted, so the server stops
   * after at most `window` more bytes. Default: the window; 0: no budget.
   */
  backlog?: number;
  /**
   * Take the server's messages over an HTTP stream (a streamed fetch) rather than the WebSocket,
   * when the server offers one. Default: on in browsers, whose WebSocket receives several times
   * slower than a fetch; off in Node. If the stream cannot be opened (a proxy that does not pass
   * it, an older server), everything goes over the WebSocket.
   */
  httpStream?: boolean;
}


export interface FrameAddress {
  sopInstanceUid: string;
  /** 1-based. */
  frameNumber: number;
  /** Position in its group's stack, for focus ordering (default: its index in the request). */
  position?: number;
}

export interface RequestOptions {
  /** Higher is sent sooner. Default 0. */
  priority?: number;
  /** The frame group the request joins (see updateGroup); default: a group of its own. */
  group?: number;
  /** Each frame as it arrives; return a promise to keep it in the backlog until it settles. */
  onFrame?: FrameCallback;
  onError?: (error: ProtocolError) => void;
}

type Pending = { resolve: (m: DecodedServerMessage) => void; reject: (e: unknown) => void };

/** An error of the connection itself (not a server error reply): code 'CONNECTION_CLOSED' or 'CONNECT_FAILED'. */
export class ConnectionError extends CodedError<'CONNECTION_CLOSED' | 'CONNECT_FAILED'> {}

export async function connect(url: string, options: ConnectOptions = {}): Promise<DicomStreamClient> {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) throw new ConnectionError('CONNECT_FAILED', 'no WebSocket class: pass { WebSocket } from the ws package');
  const socket = new Ctor(url);
  // Node's ws can hand over its own buffers (no copy); browsers take 'arraybuffer'.
  const browserSocket = Ctor === (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!browserSocket) socket.binaryType = 'nodebuffer';
  if (socket.binaryType !== 'nodebuffer') socket.binaryType = 'arraybuffer';
  const client = new DicomStreamClient(socket);
  const window = options.window ?? 32 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const httpStream = (options.httpStream ?? browserSocket) && typeof fetch === 'function';
  // The HTTP stream's GET goes out at once, beside the handshake, with a key of the client's own:
  // the server holds it until the Hello naming that key is through.
  const key = httpStream ? httpStreamKey() : '';
  const abort = new AbortController();
  const opening = httpStream ? openHttpStream(httpStreamUrl(url, key), abort, Math.min(timeoutMs, 5000)) : undefined;
  try {
    await client.handshake(options.clientName ?? 'dicomstream-client', timeoutMs, window, options.backlog ?? window, options.token ?? '', httpStream, key);
  } catch (e) {
    abort.abort();
    throw e;
  }
  // The server offers the client's own key, or none (then the GET is dropped).
  if (opening && client.server.httpStreamKey === key) await client.useHttpStream(await opening, abort);
  else abort.abort();
  return client;
}

export class DicomStreamClient {
  /** What the server said of itself in the handshake. */
  server!: Welcome;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, FrameStream>();
  private readonly assembler = new FrameAssembler();
  /** Attributes of instances seen in manifests or first chunks, by SOP Instance UID. */
  private readonly instances = new Map<string, ImageAttributes>();
  private nextId = 1;
  private nextGroup = 1;
  /** Flow control: the window the server was given, and payload bytes received but not granted back yet. */
  private window = 0;
  private ungranted = 0;
  /** Bytes of whole frames handed to streams that their consumers have not taken yet, and its bound. */
  private backlog = 0;
  private maxBacklog = 0;
  private readonly seriesListeners = new Set<(update: SeriesUpdated) => void>();
  private closedWith: Error | undefined;
  private welcome: Pending | undefined;
  private readonly opened: Promise<void>;
  /** A frame chunk's header whose payload is the next message. */
  private awaitingPayload: FrameChunkHeader | undefined;
  /** The HTTP stream the server's messages come over, once in use. */
  private httpStream: { reader: MessageReader; abort: AbortController } | undefined;
  /** Why the HTTP stream is not used, when the client asked for one and the server offered it. */
  httpStreamError: CodedError<'HTTP_STREAM_UNAVAILABLE'> | undefined;

  /** @internal use connect() */
  constructor(private readonly socket: WebSocketLike) {
    this.opened = new Promise((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new ConnectionError('CONNECT_FAILED', 'WebSocket error')));
    });
    this.opened.catch(() => undefined);
    socket.addEventListener('message', (event) => this.onMessage(event.data));
    socket.addEventListener('close', (event) => this.onClose(event.code, event.reason));
  }

  /** How the server's messages reach this client: over the WebSocket, or an HTTP stream (browsers). */
  get transport(): 'websocket' | 'http-stream' {
    return this.httpStream ? 'http-stream' : 'websocket';
  }

  /** @internal */
  async handshake(clientName: string, timeoutMs: number, window: number, maxBacklog: number, token: string, httpStream = false, httpStreamKey = ''): Promise<void> {
    this.window = window;
    this.maxBacklog = maxBacklog;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ConnectionError('CONNECT_FAILED', `no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.opened, timeout]);
      const welcome = new Promise<DecodedServerMessage>((resolve, reject) => { this.welcome = { resolve, reject }; });
      // Payloads apart: the server sends frame bytes without copying them behind a header, and each
      // arrives here as a buffer of its own (aligned for 16- and 32-bit views).
      this.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName, initialWindow: window, token, httpStream, httpStreamKey, payloadApart: true } });
      const answer = await Promise.race([welcome, timeout]);
      if (answer.kind !== 'welcome') throw new ConnectionError('CONNECT_FAILED', 'unexpected handshake answer');
      this.server = answer.welcome;
    } catch (e) {
      this.socket.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * @internal Once its HTTP stream is open (`opened`: its reader, or why not), tells the server to
   * use it. Otherwise everything stays on the WebSocket, and httpStreamError says why.
   */
  async useHttpStream(opened: MessageReader | CodedError<'HTTP_STREAM_UNAVAILABLE'>, abort: AbortController): Promise<void> {
    if (opened instanceof CodedError) {
      this.httpStreamError = opened;
      return;
    }
    if (this.closedWith) {
      abort.abort();
      return;
    }
    this.send({ useHttpStream: {} });
    this.httpStream = { reader: opened, abort };
    void this.readHttpStream(opened);
  }

  /** Every message of the HTTP stream, as if from the WebSocket; its end ends the connection. */
  private async readHttpStream(reader: MessageReader): Promise<void> {
    let reason = 'ended';
    try {
      for (let message = await reader.next(); message; message = await reader.next()) this.onMessage(message);
    } catch (e) {
      reason = (e as Error).message;
    }
    if (this.closedWith) return;
    this.socket.close(1000, 'HTTP stream lost');
    this.onClose(1006, `HTTP stream lost: ${reason}`);
  }

  /** Every study the server has, each with its series (all pages). */
  async listStudies(): Promise<StudySummary[]> {
    const studies: StudySummary[] = [];
    for (let offset = 0; ;) {
      const page = await this.listStudiesPage(offset);
      studies.push(...page.studies);
      if (page.nextOffset >= page.total || page.studies.length === 0) return studies;
      offset = page.nextOffset;
    }
  }

  /** One page of the study list. */
  async listStudiesPage(offset = 0, limit = 0): Promise<StudyList> {
    const requestId = this.newId();
    const answer = await this.ask(requestId, { listStudies: { requestId, offset, limit } });
    if (answer.kind !== 'studyList') throw unexpected(answer);
    return answer.studyList;
  }

  /**
   * Replaces the connection's token (a refreshed JWT) without dropping anything in flight.
   * Resolves with its expiry (Unix ms; undefined: none); rejects with UNAUTHENTICATED if refused.
   */
  async authenticate(token: string): Promise<number | undefined> {
    const requestId = this.newId();
    const answer = await this.ask(requestId, { authenticate: { requestId, token } });
    if (answer.kind !== 'authenticated') throw unexpected(answer);
    return answer.authenticated.expiresAt ? answer.authenticated.expiresAt * 1000 : undefined;
  }

  /** The manifest of a series: its instances, sorted, with everything needed to show them. */
  async openSeries(seriesInstanceUid: string): Promise<SeriesManifest> {
    const requestId = this.newId();
    const answer = await this.ask(requestId, { openSeries: { requestId, seriesInstanceUid } });
    if (answer.kind !== 'seriesManifest') throw unexpected(answer);
    for (const instance of answer.seriesManifest.instances) this.instances.set(instance.sopInstanceUid, instance);
    return answer.seriesManifest;
  }

  /** One frame's bytes as stored. Rejects with a ProtocolError carrying the server's code. */
  async getFrame(sopInstanceUid: string, frameNumber: number, options: { priority?: number } = {}): Promise<Frame> {
    const stream = this.requestFrames([{ sopInstanceUid, frameNumber }], options);
    let frame: Frame | undefined;
    for await (const f of stream) frame = f;
    const summary = await stream.done;
    if (frame) return frame;
    throw summary.errors[0] ?? new ProtocolError(ErrorCode.INTERNAL, `frame ${frameNumber} of ${sopInstanceUid} did not arrive`);
  }

  /** Asks for many frames at once; they arrive in order of priority, then as listed. */
  requestFrames(frames: FrameAddress[], options: RequestOptions = {}): FrameStream {
    const requestId = this.newId();
    const stream = new FrameStream(requestId, (id) => this.cancel(id), options.onFrame, options.onError, (bytes) => {
      this.backlog -= bytes;
      this.grant();
    });
    if (this.closedWith) {
      stream.fail(this.closedWith);
      return stream;
    }
    this.streams.set(requestId, stream);
    this.send({ requestFrames: { requestId, priority: options.priority ?? 0, frames, groupId: options.group ?? 0 } });
    return stream;
  }

  /** A new frame group id for this connection. */
  newGroup(settings: GroupSettings = {}): number {
    const id = this.nextGroup++;
    if (Object.keys(settings).length) this.updateGroup(id, settings);
    return id;
  }

  /** Changes a group's priority, weight or focus; the server re-orders what it still has queued. */
  updateGroup(groupId: number, settings: GroupSettings): void {
    if (!this.closedWith) this.send({ updateGroup: { groupId, ...settings } });
  }

  /** Cancels every open request of a group (each stream ends with `cancelled`). */
  cancelGroup(groupId: number): void {
    if (!this.closedWith) this.send({ cancelGroup: { groupId } });
  }

  /**
   * Calls `listener` when a series this client opened changed on the server (files added, replaced
   * or deleted): open it again for the new manifest. Returns a function that stops the calls.
   */
  onSeriesUpdated(listener: (update: SeriesUpdated) => void): () => void {
    this.seriesListeners.add(listener);
    return () => this.seriesListeners.delete(listener);
  }

  /** The attributes of an instance, once its series was opened or one of its frames arrived. */
  instance(sopInstanceUid: string): ImageAttributes | undefined {
    return this.instances.get(sopInstanceUid);
  }

  close(): void {
    this.socket.close(1000, 'client closed');
    this.onClose(1000, 'client closed');
  }

  /**
   * Gives received bytes back to the server's window, a quarter window at a time, unless the
   * application's backlog is over its budget. Bytes of frames still being assembled are given back
   * as they arrive, so a frame larger than the window still completes.
   */
  private grant(received = 0): void {
    if (!this.window || this.closedWith) return;
    this.ungranted += received;
    if ((this.maxBacklog > 0 && this.backlog >= this.maxBacklog) || this.ungranted < this.window / 4) return;
    this.send({ windowUpdate: { bytes: this.ungranted } });
    this.ungranted = 0;
  }

  private cancel(requestId: number): void {
    if (this.streams.has(requestId) && !this.closedWith) this.send({ cancel: { requestId } });
  }

  private newId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private ask(requestId: number, message: ClientMessage): Promise<DecodedServerMessage> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      this.send(message);
    });
  }

  private send(message: ClientMessage): void {
    this.socket.send(encodeClientMessage(message));
  }

  private onMessage(data: unknown): void {
    const bytes = messageBytes(data);
    if (!bytes) return;
    let message: DecodedServerMessage;
    if (this.awaitingPayload) {
      // The message after a header that said so is that chunk's payload, whole.
      message = { kind: 'frameChunk', frameChunk: this.awaitingPayload, payload: bytes };
      this.awaitingPayload = undefined;
    } else {
      try {
        message = decodeServerMessage(bytes);
      } catch {
        return; // Not ours to answer: the server speaks the protocol or nothing.
      }
      if (message.kind === 'frameChunk' && message.frameChunk.payloadFollows) {
        this.awaitingPayload = message.frameChunk;
        return;
      }
    }
    switch (message.kind) {
      case 'welcome':
        this.welcome?.resolve(message);
        this.welcome = undefined;
        return;
      case 'frameChunk': {
        // Attributes come once per instance and connection: keep them even from a cancelled request's chunk.
        if (message.frameChunk.instance) this.instances.set(message.frameChunk.sopInstanceUid, message.frameChunk.instance);
        this.grant(message.payload.length);
        const stream = this.streams.get(message.frameChunk.requestId);
        if (!stream) return; // cancelled: late chunks are dropped
        const frame = this.assembler.add(message.frameChunk, message.payload);
        if (!frame) return;
        this.backlog += frame.bytes.length; // until its consumer takes it
        stream.pushFrame({ ...frame, instance: frame.instance ?? this.instances.get(frame.sopInstanceUid) ?? null });
        return;
      }
      case 'requestComplete': {
        const { requestId } = message.requestComplete;
        const stream = this.streams.get(requestId);
        if (!stream) return;
        this.streams.delete(requestId);
        this.assembler.dropRequest(requestId);
        stream.finish(message.requestComplete);
        return;
      }
      case 'error': {
        const e = message.error;
        const error = new ProtocolError(e.code, e.message, e.requestId);
        if (e.sopInstanceUid) { error.sopInstanceUid = e.sopInstanceUid; error.frameNumber = e.frameNumber; }
        const stream = this.streams.get(e.requestId);
        if (stream) {
          if (e.sopInstanceUid) this.assembler.dropRequest(e.requestId, e.sopInstanceUid, e.frameNumber);
          stream.pushError(error);
          // An error about the request as a whole (not one frame) ends it.
          if (!e.sopInstanceUid) {
            this.streams.delete(e.requestId);
            stream.finish({ requestId: e.requestId, framesSent: 0, framesFailed: 0, cancelled: false });
          }
          return;
        }
        const pending = this.pending.get(e.requestId);
        if (pending) {
          this.pending.delete(e.requestId);
          pending.reject(error);
          return;
        }
        if (this.welcome) { this.welcome.reject(error); this.welcome = undefined; }
        return;
      }
      case 'seriesUpdated':
        for (const listener of this.seriesListeners) listener(message.seriesUpdated);
        return;
      default: {
        const id = requestIdOf(message);
        const pending = this.pending.get(id);
        if (!pending) return;
        this.pending.delete(id);
        pending.resolve(message);
      }
    }
  }

  private onClose(code: number, reason: string): void {
    if (this.closedWith) return;
    this.closedWith = new ConnectionError('CONNECTION_CLOSED', `connection closed (${code}${reason ? ': ' + reason : ''})`);
    this.httpStream?.abort.abort();
    for (const p of this.pending.values()) p.reject(this.closedWith);
    this.pending.clear();
    for (const s of this.streams.values()) s.fail(this.closedWith);
    this.streams.clear();
    this.welcome?.reject(this.closedWith);
    this.welcome = undefined;
  }
}

function requestIdOf(message: DecodedServerMessage): number {
  switch (message.kind) {
    case 'studyList': return message.studyList.requestId;
    case 'seriesManifest': return message.seriesManifest.requestId;
    case 'authenticated': return message.authenticated.requestId;
    default: return 0;
  }
}

function unexpected(message: DecodedServerMessage): Error {
  return new ProtocolError(ErrorCode.INTERNAL, `unexpected answer: ${message.kind}`);
}

export type { Frame, RequestSummary };
