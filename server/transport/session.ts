// One client connection: the handshake, the answers to its requests, and its part of the
// scheduler (frame groups, focus, window). The server's pump sends its chunks while its socket
// has room: a client holds at most `maxBufferedBytes` plus one chunk (and small control messages)
// of the server's memory, whatever it asks for, and at most its granted window in flight.
import {
  ErrorCode, PROTOCOL_VERSION, ProtocolError, decodeClientMessage, encodeServerMessage, errorCodeName,
  type DecodedClientMessage, type RequestFrames, type ServerMessage,
} from '../../shared/protocol.js';
import { AccessError } from '../access.js';
import type { Catalogue } from '../index/catalogue.js';
import type { FrameLocation } from '../index/frame-table.js';
import type { IndexedFile } from '../index/index-file.js';
import type { Logger } from '../log.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import type { SessionAccess } from './session-access.js';
import type { PumpTarget } from './pump.js';
import type { Chunk, Scheduler, Work } from './scheduler.js';

/** A frame the scheduler hands out. */
export interface QueuedFrame {
  /** When the request asking for it arrived (performance.now()), for the latency histogram. */
  askedAt: number;
  file: IndexedFile;
  location: FrameLocation;
  frameIndex: number;
  sopInstanceUid: string;
  frameNumber: number;
}

/** What a session needs of its socket (a `ws` WebSocket has it). */
export interface SessionSocket {
  send(data: Uint8Array, callback: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
}

export interface SessionLimits {
  chunkBytes: number;
  maxBufferedBytes: number;
  maxFramesPerRequest: number;
  maxOpenRequests: number;
  maxPageSize: number;
  maxMessageBytes: number;
  /** Client messages per second a connection may send (a burst of twice that); 0: no limit. */
  maxMessagesPerSecond: number;
  /** Frames queued at most per connection, over all its open requests (bounds its memory). */
  maxQueuedFrames: number;
  /** Frames queued at most over all connections. */
  maxQueuedFramesInAll: number;
}

/**
 * Reads `length` bytes of a frame from `offset` into `into` at `at`; `next` are the frames the
 * group sends after it (to read ahead).
 */
export type ReadChunk = (frame: QueuedFrame, offset: number, length: number, into: Uint8Array, at: number, next: QueuedFrame[]) => Promise<void>;

export interface SessionContext {
  catalogue: () => Catalogue;
  scheduler: Scheduler<QueuedFrame>;
  /** Wakes the pump: there may be something to send. */
  kick: () => void;
  readChunk: ReadChunk;
  /** Frames to read ahead per group. */
  readahead: number;
  limits: SessionLimits;
  serverName: string;
  transferSyntaxes: string[];
  /** Chunk buffers shared by all sessions. */
  buffers: ChunkBuffers;
  /** Counters shared by all sessions. */
  stats: { framesSent: number; bytesSent: number; errors: number; maxBufferedBytes: number };
  /** Frames queued over all connections now. */
  queuedFramesInAll: () => number;
  /** Told of every error reply (by code) and every frame sent (seconds from request to last chunk). */
  observe?: { error(code: number): void; frameSent(seconds: number): void };
}

/** Frame errors one request may get; a request with more bad frames is refused whole. */
export const MAX_FRAME_ERRORS = 100;
/** Longest UID a request may name (DICOM's are at most 64 characters; some files stretch that). */
export const MAX_UID_LENGTH = 256;

/** Implicit groups (a request that names none) get negative ids, out of the way of the client's. */
const implicitGroup = (requestId: number) => -requestId;

export class Session implements PumpTarget<QueuedFrame> {
  private handshaken = false;
  private closed = false;
  private buffered = 0;
  /** Bytes of chunks being read for this client: counted against the bound before they exist. */
  private reading = 0;
  /** Per open request: frames sent and failed so far. */
  private readonly tallies = new Map<number, { sent: number; failed: number }>();
  /** Instances whose attributes went out on this connection: later frames' chunks leave them out. */
  private readonly described = new Set<string>();
  /** Series this client opened: it is told when they change. */
  readonly openedSeries = new Set<string>();
  /** Messages wait here while one before them waits for a series to load: answers keep their order. */
  private inbox: Promise<void> | undefined;
  /** Rate limit: a token bucket of messages. */
  private tokens: number;
  private refilledAt = performance.now();

  constructor(
    readonly id: number,
    private readonly socket: SessionSocket,
    private readonly ctx: SessionContext,
    private readonly log: Logger,
    private readonly access: SessionAccess,
  ) {
    this.tokens = 2 * ctx.limits.maxMessagesPerSecond;
  }

  /** Bytes handed to the socket and not yet written out. */
  get bufferedBytes(): number { return this.buffered; }

  onMessage(data: Uint8Array, isBinary: boolean): void {
    if (this.closed) return;
    let message: DecodedClientMessage;
    try {
      if (!isBinary) throw new ProtocolError(ErrorCode.MALFORMED_MESSAGE, 'text message: the protocol is binary protobuf');
      message = decodeClientMessage(data);
    } catch (e) {
      this.sendError(e instanceof ProtocolError ? e.errorCode : ErrorCode.MALFORMED_MESSAGE, (e as Error).message, 0);
      return;
    }
    if (!this.withinRate()) {
      this.sendError(ErrorCode.RATE_LIMITED, `over ${this.ctx.limits.maxMessagesPerSecond} messages a second: request refused`, requestIdOf(message));
      return;
    }
    if (this.inbox) {
      const next: Promise<void> = this.inbox.then(() => this.process(message)).finally(() => { if (this.inbox === next) this.inbox = undefined; });
      this.inbox = next;
      return;
    }
    const pending = this.process(message);
    if (pending) {
      const next: Promise<void> = pending.finally(() => { if (this.inbox === next) this.inbox = undefined; });
      this.inbox = next;
    }
  }

  /** Handles one message; a promise when it has to wait for a series index to load. */
  private process(message: DecodedClientMessage): Promise<void> | undefined {
    const failed = (e: unknown) => {
      this.log.error('request failed', { error: (e as Error).stack ?? String(e) });
      this.sendError(ErrorCode.INTERNAL, 'internal error', requestIdOf(message));
    };
    if (this.closed) return undefined;
    try {
      const pending = this.handle(message);
      return pending instanceof Promise ? pending.catch(failed) : undefined;
    } catch (e) {
      failed(e);
      return undefined;
    }
  }

  /** The series changed on disk (files added, replaced or removed): tell the client if it has it open. */
  seriesUpdated(seriesInstanceUid: string, removed: boolean): void {
    if (!this.handshaken || !this.openedSeries.has(seriesInstanceUid)) return;
    this.sendControl({ seriesUpdated: { seriesInstanceUid, removed } });
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.scheduler.removeClient(this.id);
    this.tallies.clear();
  }

  // ---------------------------------------------------------------- PumpTarget

  ready(): boolean {
    return !this.closed && this.buffered + this.reading < this.ctx.limits.maxBufferedBytes;
  }

  async sendChunk(chunk: Chunk<QueuedFrame>, stillWanted: () => boolean): Promise<boolean> {
    const frame = chunk.item.frame;
    const describe = chunk.offset === 0 && !this.described.has(frame.sopInstanceUid);
    const header: ServerMessage = {
      frameChunk: {
        requestId: chunk.item.requestId, sopInstanceUid: frame.sopInstanceUid, frameNumber: frame.frameNumber, offset: chunk.offset,
        totalLength: chunk.item.length, instance: describe ? frame.file.image : null, bitOffset: frame.location.bitOffset,
      },
    };
    const { buffer, payloadOffset } = encodeServerMessage(header, chunk.length, (n) => this.ctx.buffers.take(n));
    // Counted from now (synchronously after the scheduler chose it), so concurrent reads for this
    // client cannot overshoot the bound together.
    this.reading += buffer.length;
    try {
      const next = chunk.offset === 0 ? this.ctx.scheduler.upcoming(this.id, chunk.groupId, this.ctx.readahead + 1).slice(1) : [];
      await this.ctx.readChunk(frame, chunk.offset, chunk.length, buffer, payloadOffset, next);
    } catch (e) {
      this.ctx.buffers.give(buffer);
      throw e;
    } finally {
      this.reading -= buffer.length;
    }
    // Cancelled or closed while reading: the chunk is dropped.
    if (this.closed || !stillWanted()) {
      this.ctx.buffers.give(buffer);
      return false;
    }
    this.send(buffer, true);
    if (describe) this.described.add(frame.sopInstanceUid);
    this.ctx.stats.bytesSent += chunk.length;
    return true;
  }

  settled(chunk: Chunk<QueuedFrame>, finished: number[], error?: Error): void {
    const { item } = chunk;
    const tally = this.tallies.get(item.requestId);
    if (error) {
      const f = item.frame;
      this.log.warn('frame unreadable', { file: f.file.path, frame: f.frameNumber, error: error.message });
      this.sendError(ErrorCode.FRAME_UNREADABLE, `frame ${f.frameNumber} could not be read: ${error.message}`, item.requestId, f.sopInstanceUid, f.frameNumber);
      if (tally) tally.failed++;
    } else if (chunk.last) {
      this.ctx.stats.framesSent++;
      this.ctx.observe?.frameSent((performance.now() - item.frame.askedAt) / 1000);
      if (tally) tally.sent++;
    }
    for (const requestId of finished) this.complete(requestId, false);
  }

  // ---------------------------------------------------------------- requests

  /** Takes a token from the bucket (refilled at the allowed rate); false when it is empty. */
  private withinRate(): boolean {
    const rate = this.ctx.limits.maxMessagesPerSecond;
    if (!rate) return true;
    const now = performance.now();
    this.tokens = Math.min(2 * rate, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  private handle(message: DecodedClientMessage): Promise<void> | void {
    if (message.kind === 'hello') return this.hello(message.hello.protocolVersion, message.hello.initialWindow, message.hello.token);
    const requestId = requestIdOf(message);
    if (!this.handshaken) return this.sendError(ErrorCode.HANDSHAKE_REQUIRED, 'send Hello first', requestId);
    if (message.kind === 'authenticate') return this.authenticate(requestId, message.authenticate.token);
    // Every request is checked against the grant; an expired token may be replaced in-band.
    if (this.access.expired && (message.kind === 'listStudies' || message.kind === 'openSeries' || message.kind === 'requestFrames')) {
      return this.sendError(ErrorCode.UNAUTHENTICATED, 'the token has expired: send Authenticate with a new one', requestId);
    }
    const scheduler = this.ctx.scheduler;
    switch (message.kind) {
      case 'listStudies':
        return this.listStudies(requestId, message.listStudies.offset, message.listStudies.limit);
      case 'openSeries': {
        const uid = message.openSeries.seriesInstanceUid;
        const catalogue = this.ctx.catalogue();
        const study = catalogue.studyOfSeries(uid);
        // A series the client may not see is answered exactly as one that does not exist.
        const unknown = () => this.sendError(ErrorCode.UNKNOWN_SERIES, `no series ${printable(uid)}`, requestId);
        if (study === undefined) return unknown();
        return this.access.decide([study]).then(() => catalogue.series(uid)).then((series) => {
          if (!series || !this.access.verdict(study)) return unknown();
          this.openedSeries.add(uid);
          this.sendControl({ seriesManifest: { requestId, ...series } });
        });
      }
      case 'requestFrames':
        return this.requestFrames(message.requestFrames);
      case 'cancel':
        if (scheduler.cancelRequest(this.id, requestId).requests.length) this.complete(requestId, true);
        return;
      case 'cancelGroup':
        for (const r of scheduler.cancelGroup(this.id, message.cancelGroup.groupId).requests) this.complete(r, true);
        return;
      case 'updateGroup': {
        const { groupId, priority, focus, weight } = message.updateGroup;
        if (groupId === 0) return this.sendError(ErrorCode.MALFORMED_MESSAGE, 'group_id must not be 0', 0);
        scheduler.updateGroup(this.id, groupId, { priority, focus, weight });
        this.ctx.kick();
        return;
      }
      case 'windowUpdate':
        scheduler.grant(this.id, message.windowUpdate.bytes);
        this.ctx.kick();
        return;
    }
  }

  /** The studies this client may see, one page of them. */
  private listStudies(requestId: number, offset: number, limit: number): Promise<void> | void {
    const catalogue = this.ctx.catalogue();
    const pageSize = Math.min(limit || this.ctx.limits.maxPageSize, this.ctx.limits.maxPageSize);
    if (this.access.allowsAll) {
      this.sendControl({ studyList: { requestId, ...catalogue.listStudies(offset, pageSize) } });
      return;
    }
    const all = catalogue.allStudies();
    return this.access.decide(all.map((s) => s.studyInstanceUid)).then(() => {
      const visible = all.filter((s) => this.access.verdict(s.studyInstanceUid));
      const studies = visible.slice(offset, offset + pageSize);
      this.sendControl({ studyList: { requestId, studies, total: visible.length, nextOffset: Math.min(visible.length, offset + studies.length) } });
    });
  }

  /** A new token in-band: the grant is replaced; a refused one leaves the old grant as it was. */
  private authenticate(requestId: number, token: string): Promise<void> {
    return this.access.login(token).then(
      (grant) => this.sendControl({ authenticated: { requestId, expiresAt: grant.expiresAt === undefined ? 0 : Math.floor(grant.expiresAt / 1000) } }),
      (e: unknown) => this.sendError(ErrorCode.UNAUTHENTICATED, e instanceof AccessError ? e.message : 'the token is not valid', requestId),
    );
  }

  private hello(version: number, initialWindow: number, token: string): Promise<void> | void {
    if (version !== PROTOCOL_VERSION) {
      this.sendError(ErrorCode.UNSUPPORTED_VERSION, `protocol version ${version} is not served; this server speaks ${PROTOCOL_VERSION}`, 0);
      this.socket.close(1002, 'unsupported protocol version');
      this.onClose();
      return;
    }
    if (this.handshaken) return this.welcome(initialWindow);
    return this.access.login(token).then(() => this.welcome(initialWindow), (e: unknown) => {
      // No, a wrong or an expired token: say why, then close (1008: policy violation).
      this.sendError(ErrorCode.UNAUTHENTICATED, e instanceof AccessError ? e.message : 'the token is not valid', 0);
      this.socket.close(1008, 'unauthenticated');
      this.onClose();
    });
  }

  private welcome(initialWindow: number): void {
    if (this.closed) return;
    if (!this.handshaken) this.ctx.scheduler.addClient(this.id, { window: initialWindow });
    this.handshaken = true;
    const l = this.ctx.limits;
    this.sendControl({
      welcome: {
        protocolVersion: PROTOCOL_VERSION,
        serverName: this.ctx.serverName,
        transferSyntaxes: this.ctx.transferSyntaxes,
        limits: {
          maxChunkBytes: l.chunkBytes, maxMessageBytes: l.maxMessageBytes, maxFramesPerRequest: l.maxFramesPerRequest,
          maxOpenRequests: l.maxOpenRequests, maxPageSize: l.maxPageSize, maxBufferedBytes: l.maxBufferedBytes,
          maxQueuedFrames: l.maxQueuedFrames, maxMessagesPerSecond: l.maxMessagesPerSecond,
        },
      },
    });
  }

  /** Loads the series index of every instance asked for that is not in the cache, then queues the frames. */
  /** A request refused before anything is looked up or loaded for it (its error is sent). */
  private refused(r: RequestFrames): boolean {
    const { requestId } = r;
    const scheduler = this.ctx.scheduler;
    if (requestId === 0) return this.refuse(ErrorCode.MALFORMED_MESSAGE, 'request_id must not be 0', 0);
    if (scheduler.hasRequest(this.id, requestId) || this.tallies.has(requestId)) {
      return this.refuse(ErrorCode.DUPLICATE_REQUEST_ID, `request ${requestId} is still open`, requestId);
    }
    if (scheduler.openRequests(this.id) >= this.ctx.limits.maxOpenRequests) {
      return this.refuse(ErrorCode.TOO_MANY_REQUESTS, `at most ${this.ctx.limits.maxOpenRequests} open requests per connection`, requestId);
    }
    if (r.frames.length > this.ctx.limits.maxFramesPerRequest) {
      return this.refuse(ErrorCode.TOO_MANY_REQUESTS, `at most ${this.ctx.limits.maxFramesPerRequest} frames per request`, requestId);
    }
    if (scheduler.queuedFrames(this.id) + r.frames.length > this.ctx.limits.maxQueuedFrames) {
      return this.refuse(ErrorCode.TOO_MANY_REQUESTS, `at most ${this.ctx.limits.maxQueuedFrames} frames queued per connection: wait for some, or cancel`, requestId);
    }
    // A UID is at most 64 characters (PS3.5); far longer ones are refused before they are echoed back.
    if (r.frames.some((f) => f.sopInstanceUid.length > MAX_UID_LENGTH)) {
      return this.refuse(ErrorCode.MALFORMED_MESSAGE, `a SOP Instance UID longer than ${MAX_UID_LENGTH} characters: request refused`, requestId);
    }
    if (this.ctx.queuedFramesInAll() + r.frames.length > this.ctx.limits.maxQueuedFramesInAll) {
      return this.refuse(ErrorCode.TOO_MANY_REQUESTS, 'the server has too many frames queued: try again shortly', requestId);
    }
    return false;
  }

  /** Sends a refusal; true, for `return this.refuse(…)` in refused(). */
  private refuse(code: number, message: string, requestId: number): true {
    this.sendError(code, message, requestId);
    return true;
  }

  private requestFrames(r: RequestFrames): Promise<void> | void {
    if (this.refused(r)) return;
    const askedAt = performance.now();
    const catalogue = this.ctx.catalogue();
    const missing = new Set<string>();
    const studies = new Set<string>();
    // Per-study checks only when the grant or a hook limits studies: the open case pays nothing per frame.
    const everyStudy = this.access.allowsAll;
    for (const ref of r.frames) {
      if (!everyStudy) {
        const study = catalogue.studyOfInstance(ref.sopInstanceUid);
        if (study !== undefined && this.access.verdict(study) === undefined) studies.add(study);
      }
      if (catalogue.loadedInstance(ref.sopInstanceUid)) continue;
      const record = catalogue.record(ref.sopInstanceUid);
      if (record) missing.add(record.seriesInstanceUid);
    }
    // An instance of a study this client may not see is answered exactly as an unknown one.
    const visible = (uid: string) => {
      if (everyStudy) return true;
      const study = catalogue.studyOfInstance(uid);
      return study !== undefined && this.access.verdict(study) === true;
    };
    if (missing.size === 0 && studies.size === 0) return this.queueFrames(r, (uid) => (visible(uid) ? catalogue.loadedInstance(uid) : undefined), askedAt);
    return Promise.all([this.access.decide(studies), ...[...missing].map((uid) => catalogue.openSeries(uid))]).then(([, ...opened]) => {
      // From what was loaded (the cache may be smaller than the series), else the cache.
      const lookup = (uid: string) => {
        if (!visible(uid)) return undefined;
        for (const s of opened) { const f = s?.files.get(uid); if (f) return f; }
        return catalogue.loadedInstance(uid);
      };
      this.queueFrames(r, lookup, askedAt);
    });
  }

  private queueFrames(r: RequestFrames, instance: (sopInstanceUid: string) => IndexedFile | undefined, askedAt: number): void {
    const { requestId } = r;
    const scheduler = this.ctx.scheduler;
    const work: Work<QueuedFrame>[] = [];
    const failures: Array<{ code: number; text: string; sopInstanceUid: string; frameNumber: number }> = [];
    r.frames.forEach((ref, index) => {
      const fail = (code: number, text: string) => { failures.push({ code, text, sopInstanceUid: ref.sopInstanceUid, frameNumber: ref.frameNumber }); };
      const file = instance(ref.sopInstanceUid);
      if (!file) {
        const gone = this.ctx.catalogue().goneReason(ref.sopInstanceUid);
        return fail(ErrorCode.UNKNOWN_INSTANCE, `no instance ${printable(ref.sopInstanceUid)}${gone ? `: ${gone}` : ''}`);
      }
      const location = file.frames[ref.frameNumber - 1];
      if (!location) return fail(ErrorCode.FRAME_OUT_OF_RANGE, `frame ${ref.frameNumber} of ${file.frames.length}`);
      work.push({
        requestId, position: ref.position ?? index, length: location.length,
        frame: { askedAt, file, location, frameIndex: ref.frameNumber - 1, sopInstanceUid: ref.sopInstanceUid, frameNumber: ref.frameNumber },
      });
    });
    // One error per bad frame, but not a flood of them: a request naming more bad frames than
    // that is refused whole, with one error.
    if (failures.length > MAX_FRAME_ERRORS) {
      return this.sendError(ErrorCode.MALFORMED_MESSAGE,
        `${failures.length} of the ${r.frames.length} frames asked for do not exist (more than ${MAX_FRAME_ERRORS}): request refused`, requestId);
    }
    for (const f of failures) this.sendError(f.code, f.text, requestId, f.sopInstanceUid, f.frameNumber);
    const failed = failures.length;
    this.tallies.set(requestId, { sent: 0, failed });
    if (work.length === 0) {
      this.complete(requestId, false);
      return;
    }
    const groupId = r.groupId || implicitGroup(requestId);
    scheduler.enqueue(this.id, groupId, work, { priority: r.priority });
    this.ctx.kick();
  }

  private complete(requestId: number, cancelled: boolean): void {
    const tally = this.tallies.get(requestId) ?? { sent: 0, failed: 0 };
    this.tallies.delete(requestId);
    this.sendControl({ requestComplete: { requestId, framesSent: tally.sent, framesFailed: tally.failed, cancelled } });
  }

  // ---------------------------------------------------------------- sending

  private sendError(code: number, message: string, requestId: number, sopInstanceUid = '', frameNumber = 0): void {
    if (this.closed) return;
    this.ctx.stats.errors++;
    this.ctx.observe?.error(code);
    this.log.debug('error reply', { code: errorCodeName(code), requestId, message });
    this.sendControl({ error: { requestId, code, message, sopInstanceUid, frameNumber } });
  }

  private sendControl(message: ServerMessage): void {
    if (this.closed) return;
    // Answers pile up only for a client that sends and never reads: past a bound, it is cut off.
    if (this.buffered > 4 * this.ctx.limits.maxBufferedBytes + 1024 * 1024) {
      this.log.warn('client does not read its answers: closing', { buffered: this.buffered });
      this.socket.close(1008, 'not reading');
      this.onClose();
      return;
    }
    this.send(encodeServerMessage(message).buffer);
  }

  /** Hands bytes to the socket; a `pooled` buffer goes back to the pool once written. */
  private send(bytes: Uint8Array, pooled = false): void {
    if (this.closed) {
      if (pooled) this.ctx.buffers.give(bytes);
      return;
    }
    this.buffered += bytes.length;
    if (this.buffered > this.ctx.stats.maxBufferedBytes) this.ctx.stats.maxBufferedBytes = this.buffered;
    this.socket.send(bytes, (error) => {
      this.buffered -= bytes.length;
      // Written out (or failed for good): nothing reads the buffer any more.
      if (pooled) this.ctx.buffers.give(bytes);
      if (error) {
        if (!this.closed) this.log.debug('send failed', { error: error.message });
        this.onClose();
        return;
      }
      if (this.buffered < this.ctx.limits.maxBufferedBytes) this.ctx.kick();
    });
  }
}

function requestIdOf(message: DecodedClientMessage): number {
  switch (message.kind) {
    case 'listStudies': return message.listStudies.requestId;
    case 'openSeries': return message.openSeries.requestId;
    case 'requestFrames': return message.requestFrames.requestId;
    case 'cancel': return message.cancel.requestId;
    case 'authenticate': return message.authenticate.requestId;
    default: return 0;
  }
}

/** A UID as it can be quoted in an error: short and without control characters. */
function printable(uid: string): string {
  const clean = uid.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > 80 ? clean.slice(0, 80) + '…' : clean);
}
