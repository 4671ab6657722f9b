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
import { OpenRequest, backoffMs, resumable, retryableStatus } from './resume.js';
import { messageBytes, onUpgradeRefused, type RefusedUpgrade, type WebSocketConstructor, type WebSocketLike } from './socket.js';

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
  /**
   * When the connection is lost (the server or its machine went away, a proxy dropped it), connect
   * again, with backoff, and ask for what was still wanted: every open request's frames not yet
   * received (same priority, group and focus), every answer still awaited. The application sees
   * each frame once and makes no call of its own; `onStateChange` and `onReconnect` tell a viewer.
   * Default on; false: the first loss fails every open request with CONNECTION_CLOSED.
   */
  reconnect?: boolean | ReconnectOptions;
}

export interface ReconnectOptions {
  /** Attempts before giving up (then every open request fails with CONNECTION_CLOSED). Default 10. */
  maxAttempts?: number;
  /** Wait before the first attempt, doubled for each next one (with jitter). Default 100 ms. */
  initialDelayMs?: number;
  /** Longest wait between attempts. Default 5000 ms. */
  maxDelayMs?: number;
}

/** The connection: open, lost and being made again, or over for good. */
export type ConnectionState = 'open' | 'reconnecting' | 'closed';

/** What a reconnect carried over to the new connection. */
export interface ReconnectInfo {
  /** Attempts it took (1: the first one succeeded). */
  attempts: number;
  /** Open requests asked again, and the frames of theirs still to come. */
  requests: number;
  frames: number;
  /** Why the last connection ended. */
  reason: string;
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

/** An answer awaited, with its question (asked again on a new connection). */
type Pending = { resolve: (m: DecodedServerMessage) => void; reject: (e: unknown) => void; message?: ClientMessage };

/** An error of the connection itself (not a server error reply): code 'CONNECTION_CLOSED' or 'CONNECT_FAILED'. */
export class ConnectionError extends CodedError<'CONNECTION_CLOSED' | 'CONNECT_FAILED'> {
  /**
   * The HTTP status the server refused the WebSocket upgrade with (429 too many connections from
   * this address, 503 full or shutting down, 403 Origin not allowed, 401): on CONNECT_FAILED, and
   * on CONNECTION_CLOSED when reconnecting ended on one. Only where the WebSocket tells it: Node's
   * `ws` does; in browsers it is undefined (they hide it).
   */
  readonly status: number | undefined;

  constructor(code: 'CONNECTION_CLOSED' | 'CONNECT_FAILED', message: string, status?: number) {
    super(code, message);
    this.status = status;
  }
}

/** What a refused upgrade's status means, for the error's message. */
const REFUSALS: Record<number, string> = {
  401: 'not authorized',
  403: 'forbidden: the page\'s Origin is not allowed, or the server refuses every connection',
  429: 'too many connections from this address',
  503: 'the server is full or shutting down',
};

function upgradeRefused({ status, statusText }: RefusedUpgrade): ConnectionError {
  const meaning = REFUSALS[status];
  return new ConnectionError('CONNECT_FAILED',
    `the server refused the WebSocket upgrade: HTTP ${status}${statusText ? ` ${statusText}` : ''}${meaning ? ` (${meaning})` : ''}`, status);
}

/** The socket's own word on a failure, where it gives one (Node's ws does; browsers do not). */
function socketFailure(event: unknown): ConnectionError {
  const detail = (event as { message?: unknown } | null)?.message;
  return new ConnectionError('CONNECT_FAILED', typeof detail === 'string' && detail ? `WebSocket error: ${detail}` : 'WebSocket error');
}

export async function connect(url: string, options: ConnectOptions = {}): Promise<DicomStreamClient> {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) throw new ConnectionError('CONNECT_FAILED', 'no WebSocket class: pass { WebSocket } from the ws package');
  const browserSocket = Ctor === (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const window = options.window ?? 32 * 1024 * 1024;
  const reconnect = options.reconnect ?? true;
  const client = new DicomStreamClient({
    url, Ctor, browserSocket, clientName: options.clientName ?? 'dicomstream-client', timeoutMs: options.timeoutMs ?? 10_000,
    window, backlog: options.backlog ?? window, token: options.token ?? '',
    httpStream: (options.httpStream ?? browserSocket) && typeof fetch === 'function',
    reconnect: reconnect === false ? undefined : {
      maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 5000, ...(reconnect === true ? {} : reconnect),
    },
  });
  try {
    await client.open();
  } catch (e) {
    client.close();
    throw e;
  }
  return client;
}

/** How the client connects, each time it does. */
interface LinkSettings {
  url: string;
  Ctor: WebSocketConstructor;
  browserSocket: boolean;
  clientName: string;
  timeoutMs: number;
  window: number;
  backlog: number;
  /** The token of the next handshake: the last one the server accepted. */
  token: string;
  httpStream: boolean;
  reconnect: Required<ReconnectOptions> | undefined;
}

export class DicomStreamClient {
  /** What the server said of itself in the handshake. */
  server!: Welcome;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, FrameStream>();
  /** What each open request asked for and has received: asked again after a reconnect. */
  private readonly requests = new Map<number, OpenRequest>();
  /** Every frame group's settings as last set: set again on a new connection. */
  private readonly groups = new Map<number, GroupSettings>();
  private assembler = new FrameAssembler();
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
  private socket!: WebSocketLike;
  private connectionState: ConnectionState = 'reconnecting';
  /** A socket and its handshake are being made (its close fails open(), nothing else). */
  private opening = false;
  private readonly stateListeners = new Set<(state: ConnectionState, detail: { attempt?: number; error?: Error }) => void>();
  private readonly reconnectListeners = new Set<(info: ReconnectInfo) => void>();
  /** A frame chunk's header whose payload is the next message. */
  private awaitingPayload: FrameChunkHeader | undefined;
  /** The HTTP stream the server's messages come over, once in use. */
  private httpStream: { reader: MessageReader; abort: AbortController } | undefined;
  /** Why the HTTP stream is not used, when the client asked for one and the server offered it. */
  httpStreamError: CodedError<'HTTP_STREAM_UNAVAILABLE'> | undefined;

  /** @internal use connect() */
  /** @internal use connect() */
  constructor(private readonly link: LinkSettings) {}

  /** @internal A connection (a new socket, the handshake, the HTTP stream); throws when it fails. */
  async open(): Promise<void> {
    this.opening = true;
    try {
      await this.connectSocket();
    } finally {
      this.opening = false;
    }
  }

  private async connectSocket(): Promise<void> {
    const { url, Ctor, browserSocket, timeoutMs, httpStream } = this.link;
    const socket = new Ctor(url);
    // Node's ws can hand over its own buffers (no copy); browsers take 'arraybuffer'.
    if (!browserSocket) socket.binaryType = 'nodebuffer';
    if (socket.binaryType !== 'nodebuffer') socket.binaryType = 'arraybuffer';
    let refused: RefusedUpgrade | undefined;
    onUpgradeRefused(socket, (upgrade) => { refused = upgrade; });
    const opened = new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', (event) => reject(refused ? upgradeRefused(refused) : socketFailure(event)));
    });
    opened.catch(() => undefined);
    // Events of an earlier socket (lost, replaced) are not this connection's.
    socket.addEventListener('message', (event) => { if (socket === this.socket) this.onMessage(event.data); });
    socket.addEventListener('close', (event) => { if (socket === this.socket) this.onClose(event.code, event.reason); });
    this.socket = socket;
    // The HTTP stream's GET goes out at once, beside the handshake, with a key of the client's own:
    // the server holds it until the Hello naming that key is through.
    const key = httpStream ? httpStreamKey() : '';
    const abort = new AbortController();
    const opening = httpStream ? openHttpStream(httpStreamUrl(url, key), abort, Math.min(timeoutMs, 5000)) : undefined;
    try {
      await this.handshake(opened, key);
    } catch (e) {
      abort.abort();
      throw e;
    }
    // Open for sends (a reconnect asks for what was still wanted before it tells anyone).
    this.connectionState = 'open';
    // The server offers the client's own key, or none (then the GET is dropped).
    if (opening && this.server.httpStreamKey === key) await this.useHttpStream(await opening, abort);
    else abort.abort();
  }

  /** The connection's state: open, lost and being made again, or over for good. */
  get state(): ConnectionState {
    return this.connectionState;
  }

  /**
   * Calls `listener` when the connection is lost and being made again ('reconnecting', with the
   * attempt and the last error), is open again ('open'), or is over ('closed', with why). Returns
   * a function that stops the calls.
   */
  onStateChange(listener: (state: ConnectionState, detail: { attempt?: number; error?: Error }) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Calls `listener` after each reconnect, with what it asked the new connection for again. */
  onReconnect(listener: (info: ReconnectInfo) => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** How the server's messages reach this client: over the WebSocket, or an HTTP stream (browsers). */
  get transport(): 'websocket' | 'http-stream' {
    return this.httpStream ? 'http-stream' : 'websocket';
  }

  private async handshake(opened: Promise<void>, httpStreamKey: string): Promise<void> {
    const { clientName, timeoutMs, window, backlog, token, httpStream } = this.link;
    this.window = window;
    this.maxBacklog = backlog;
    this.ungranted = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ConnectionError('CONNECT_FAILED', `no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([opened, timeout]);
      const welcome = new Promise<DecodedServerMessage>((resolve, reject) => { this.welcome = { resolve, reject }; });
      // Payloads apart: the server sends frame bytes without copying them behind a header, and each
      // arrives here as a buffer of its own (aligned for 16- and 32-bit views).
      this.send({ hello: { protocolVersion: PROTOCOL_VERSION, clientName, initialWindow: window, token, httpStream, httpStreamKey, payloadApart: true } });
      const answer = await Promise.race([welcome, timeout]);
      if (answer.kind !== 'welcome') throw new ConnectionError('CONNECT_FAILED', 'unexpected handshake answer');
      this.server = answer.welcome;
    } catch (e) {
      this.welcome = undefined;
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
  private async useHttpStream(opened: MessageReader | CodedError<'HTTP_STREAM_UNAVAILABLE'>, abort: AbortController): Promise<void> {
    if (opened instanceof CodedError) {
      this.httpStreamError = opened;
      return;
    }
    this.httpStreamError = undefined;
    if (this.connectionState !== 'open') {
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
    const current = () => this.httpStream?.reader === reader;
    try {
      for (let message = await reader.next(); message && current(); message = await reader.next()) this.onMessage(message);
    } catch (e) {
      reason = (e as Error).message;
    }
    if (!current() || this.connectionState !== 'open') return;
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
    // A new connection (after a reconnect) starts with it.
    this.link.token = token;
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
    const priority = options.priority ?? 0;
    const groupId = options.group ?? 0;
    this.streams.set(requestId, stream);
    this.requests.set(requestId, new OpenRequest(frames, priority, groupId));
    // While reconnecting, it is asked for once the new connection is up.
    if (this.connectionState === 'open') this.send({ requestFrames: { requestId, priority, frames, groupId } });
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
    this.groups.set(groupId, { ...this.groups.get(groupId), ...settings });
    if (this.connectionState === 'open') this.send({ updateGroup: { groupId, ...settings } });
  }

  /** Cancels every open request of a group (each stream ends with `cancelled`). */
  cancelGroup(groupId: number): void {
    for (const [requestId, request] of this.requests) if (request.group === groupId) this.cancel(requestId);
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
    this.fail(new ConnectionError('CONNECTION_CLOSED', 'connection closed (1000: client closed)'));
    this.socket.close(1000, 'client closed');
  }

  /**
   * Gives received bytes back to the server's window, a quarter window at a time, unless the
   * application's backlog is over its budget. Bytes of frames still being assembled are given back
   * as they arrive, so a frame larger than the window still completes.
   */
  private grant(received = 0): void {
    if (!this.window || this.connectionState !== 'open') return;
    this.ungranted += received;
    if ((this.maxBacklog > 0 && this.backlog >= this.maxBacklog) || this.ungranted < this.window / 4) return;
    this.send({ windowUpdate: { bytes: this.ungranted } });
    this.ungranted = 0;
  }

  private cancel(requestId: number): void {
    const request = this.requests.get(requestId);
    if (!request || request.cancelled) return;
    request.cancelled = true;
    if (this.connectionState === 'open') this.send({ cancel: { requestId } });
    // No connection to say so: it ends here, and is not asked for again.
    else this.finishRequest(requestId, { requestId, ...request.counts, cancelled: true });
  }

  /** Ends a request's stream with its summary, and forgets it. */
  private finishRequest(requestId: number, summary: Omit<RequestSummary, 'errors'>): void {
    const stream = this.streams.get(requestId);
    this.streams.delete(requestId);
    this.requests.delete(requestId);
    this.assembler.dropRequest(requestId);
    stream?.finish(summary);
  }

  private newId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private ask(requestId: number, message: ClientMessage): Promise<DecodedServerMessage> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject, message });
      if (this.connectionState === 'open') this.send(message);
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
        // Each frame once, also when a reconnect asked again for one that had come after all.
        if (this.requests.get(frame.requestId)?.arrived(frame.sopInstanceUid, frame.frameNumber) === false) return;
        this.backlog += frame.bytes.length; // until its consumer takes it
        stream.pushFrame({ ...frame, instance: frame.instance ?? this.instances.get(frame.sopInstanceUid) ?? null });
        return;
      }
      case 'requestComplete': {
        const { requestId } = message.requestComplete;
        const request = this.requests.get(requestId);
        if (!request) return;
        this.finishRequest(requestId, { ...message.requestComplete, ...request.summary(message.requestComplete) });
        return;
      }
      case 'error': {
        const e = message.error;
        const error = new ProtocolError(e.code, e.message, e.requestId);
        if (e.sopInstanceUid) { error.sopInstanceUid = e.sopInstanceUid; error.frameNumber = e.frameNumber; }
        const stream = this.streams.get(e.requestId);
        if (stream) {
          if (e.sopInstanceUid) {
            this.assembler.dropRequest(e.requestId, e.sopInstanceUid, e.frameNumber);
            this.requests.get(e.requestId)?.failedFrame(e.sopInstanceUid, e.frameNumber);
          }
          stream.pushError(error);
          // An error about the request as a whole (not one frame) ends it.
          if (!e.sopInstanceUid) this.finishRequest(e.requestId, { requestId: e.requestId, framesSent: 0, framesFailed: 0, cancelled: false });
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
    if (this.connectionState === 'closed') return;
    const error = new ConnectionError('CONNECTION_CLOSED', `connection closed (${code}${reason ? ': ' + reason : ''})`);
    this.welcome?.reject(error);
    this.welcome = undefined;
    // A connection being made: open() fails, and whoever called it decides. Reconnecting already
    // (the HTTP stream's loss came first): the lost socket's own close changes nothing.
    if (this.opening || this.connectionState === 'reconnecting') return;
    if (this.connectionState === 'open' && this.link.reconnect && resumable(code)) {
      void this.reconnect(error);
      return;
    }
    this.fail(error);
  }

  /** The connection is over for good: everything still awaited fails with `error`. */
  private fail(error: Error): void {
    if (this.connectionState === 'closed') return;
    this.connectionState = 'closed';
    this.closedWith = error;
    this.httpStream?.abort.abort();
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    for (const s of this.streams.values()) s.fail(error);
    this.streams.clear();
    this.requests.clear();
    this.welcome?.reject(error);
    this.welcome = undefined;
    this.emitState('closed', { error });
  }

  /**
   * The connection was lost: connect again with backoff and ask the new one for what was still
   * wanted. Gives up (failing everything) after the attempts allowed, or when the server refuses
   * the handshake (a token no longer valid, say) or the upgrade for good (403, 401: trying again
   * would not help); a server full or draining (503), or too many connections (429), is tried again.
   */
  private async reconnect(lost: ConnectionError): Promise<void> {
    const settings = this.link.reconnect!;
    this.connectionState = 'reconnecting';
    this.httpStream?.abort.abort();
    this.httpStream = undefined;
    // Partly received frames are asked for again whole; the new window starts full.
    this.assembler = new FrameAssembler();
    this.awaitingPayload = undefined;
    let last: Error = lost;
    let attempt = 0;
    while (attempt < settings.maxAttempts) {
      attempt++;
      this.emitState('reconnecting', { attempt, error: last });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, backoffMs(attempt, settings.initialDelayMs, settings.maxDelayMs));
        // In Node, a client with nothing awaited does not keep the process alive to reconnect.
        if (this.requests.size === 0 && this.pending.size === 0) (timer as { unref?: () => void }).unref?.();
      });
      if (this.isClosed()) return; // closed by the application meanwhile
      try {
        await this.open();
      } catch (e) {
        last = e as Error;
        if (e instanceof ProtocolError || (e instanceof ConnectionError && !retryableStatus(e.status))) break;
        continue;
      }
      if (this.isClosed()) {
        this.socket.close(1000, 'client closed');
        return;
      }
      const info = this.resume(attempt, lost.message);
      this.emitState('open', {});
      for (const listener of this.reconnectListeners) listener(info);
      return;
    }
    const status = last instanceof ConnectionError ? last.status : undefined;
    this.fail(new ConnectionError('CONNECTION_CLOSED', `${lost.message}; reconnecting failed after ${attempt} attempt(s): ${last.message}`, status));
  }

  /** Asks a new connection for what the lost one still owed: group settings, frames, answers. */
  private resume(attempts: number, reason: string): ReconnectInfo {
    for (const [groupId, settings] of this.groups) this.send({ updateGroup: { groupId, ...settings } });
    let requests = 0;
    let frames = 0;
    for (const [requestId, request] of [...this.requests]) {
      const left = request.cancelled ? [] : request.resume();
      if (left.length === 0) {
        // Everything came, or it was cancelled, before the end was said.
        this.finishRequest(requestId, { requestId, ...request.counts, cancelled: request.cancelled });
        continue;
      }
      requests++;
      frames += left.length;
      this.send({ requestFrames: { requestId, priority: request.priority, frames: left, groupId: request.group } });
    }
    for (const p of this.pending.values()) if (p.message) this.send(p.message);
    return { attempts, requests, frames, reason };
  }

  /** (A method: the state changes across awaits, which narrowing does not see.) */
  private isClosed(): boolean {
    return this.connectionState === 'closed';
  }

  private emitState(state: ConnectionState, detail: { attempt?: number; error?: Error }): void {
    for (const listener of this.stateListeners) listener(state, detail);
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
