// One client connection: the handshake, the dispatch of its messages, and its part of the
// scheduler (frame groups, focus, window). The parts it dispatches to: refusals.ts (what is
// refused, and why), frame-resolver.ts (catalogue lookups and access), outbox.ts (sending within
// the memory bound), rate-limit.ts. The server's pump sends its chunks while its outbox has room.
import {
  ErrorCode, PROTOCOL_VERSION, ProtocolError, decodeClientMessage, errorCodeName, type DecodedClientMessage, type Hello, type RequestFrames,
} from '../../shared/protocol.js';
import { AccessError } from '../access.js';
import type { Logger } from '../log.js';
import { FrameResolver, type QueuedFrame, type ResolvedFrames } from './frame-resolver.js';
import type { HttpStreamOffer, HttpStreamSink } from './http-stream.js';
import { Outbox, type SessionSocket } from './outbox.js';
import type { PumpTarget } from './pump.js';
import { RateLimit } from './rate-limit.js';
import {
  TEXT_MESSAGE, badFramesRefusal, helloRefusal, messageRefusal, printable, rateLimited, requestFramesRefusal, requestIdOf, type Refusal,
} from './refusals.js';
import type { Chunk, Scheduler } from './scheduler.js';
import type { SessionAccess } from './session-access.js';
import { readFrameChunk, welcomeOf, type SessionContext } from './session-context.js';

export type { QueuedFrame } from './frame-resolver.js';
export type { SessionSocket } from './outbox.js';
export type { ReadChunk, SessionContext, SessionLimits, WholeFrames } from './session-context.js';
export { MAX_FRAME_ERRORS, MAX_UID_LENGTH } from './refusals.js';

/** Implicit groups (a request that names none) get negative ids, out of the way of the client's. */
const implicitGroup = (requestId: number) => -requestId;

export class Session implements PumpTarget<QueuedFrame> {
  /** Welcome sent: the protocol handshake is through. */
  private welcomed = false;
  private closed = false;
  /** Per open request: frames sent and failed so far. */
  private readonly tallies = new Map<number, { sent: number; failed: number }>();
  /**
   * Attributes this client has (in a series manifest, or on an earlier chunk): frames' chunks leave
   * them out. By object: a file changed on disk gets new attributes, which go out again.
   */
  private readonly described = new WeakSet<object>();
  /** Series this client opened: it is told when they change. */
  readonly openedSeries = new Set<string>();
  /** Messages wait here while one before them waits for a series to load: answers keep their order. */
  private inbox: Promise<void> | undefined;
  private readonly rate: RateLimit;
  private readonly outbox: Outbox;
  private readonly resolver: FrameResolver;
  /**
   * The HTTP stream: offered (a key in Welcome; withdrawn when the connection ends), attached (the
   * GET came), then used (UseHttpStream).
   */
  private streamOffer: HttpStreamOffer | undefined;
  private stream: HttpStreamSink | undefined;
  private streamUsed = false;
  /** The client takes a chunk's payload as a message of its own (Hello.payload_apart). */
  private payloadApart = false;

  constructor(
    readonly id: number,
    socket: SessionSocket,
    private readonly ctx: SessionContext,
    private readonly log: Logger,
    private readonly access: SessionAccess,
  ) {
    this.rate = new RateLimit(ctx.limits.maxMessagesPerSecond);
    this.outbox = new Outbox(socket, {
      maxBufferedBytes: ctx.limits.maxBufferedBytes, stats: ctx.stats, kick: ctx.kick, log, onBroken: () => this.onClose(),
    });
    this.resolver = new FrameResolver(ctx.catalogue, access);
  }

  /** The protocol handshake is through (Welcome sent). */
  get handshaken(): boolean { return this.welcomed; }

  /** Bytes handed to the socket and not yet written out. */
  get bufferedBytes(): number { return this.outbox.bufferedBytes; }

  onMessage(data: Uint8Array, isBinary: boolean): void {
    if (this.closed) return;
    let message: DecodedClientMessage;
    try {
      if (!isBinary) return this.refuse(TEXT_MESSAGE, 0);
      message = decodeClientMessage(data);
    } catch (e) {
      this.sendError(e instanceof ProtocolError ? e.errorCode : ErrorCode.MALFORMED_MESSAGE, (e as Error).message, 0);
      return;
    }
    if (!this.rate.take()) return this.refuse(rateLimited(this.ctx.limits.maxMessagesPerSecond), requestIdOf(message));
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
    if (!this.welcomed || !this.openedSeries.has(seriesInstanceUid)) return;
    this.outbox.control({ seriesUpdated: { seriesInstanceUid, removed } });
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox.ended();
    this.ctx.scheduler.removeClient(this.id);
    this.tallies.clear();
    this.streamOffer?.withdraw();
    this.stream?.close();
  }

  // ---------------------------------------------------------------- PumpTarget

  ready(): boolean {
    return !this.closed && this.outbox.hasRoom();
  }

  async sendChunk(chunk: Chunk<QueuedFrame>, stillWanted: () => boolean): Promise<boolean> {
    const { image } = chunk.item.frame.file;
    const describe = chunk.offset === 0 && !this.described.has(image);
    const { messages, done, unreserve } = await readFrameChunk(chunk, describe, this.id, this.ctx, this.outbox, this.payloadApart);
    // Cancelled or closed while reading: the chunk is dropped.
    if (this.closed || !stillWanted()) {
      unreserve();
      done();
      return false;
    }
    // Buffered before it stops being reserved: no moment when another chunk sees room it does not
    // have. The messages go one after the other, synchronously: nothing can come between them.
    for (let i = 0; i < messages.length - 1; i++) this.outbox.send(messages[i]!);
    this.outbox.send(messages[messages.length - 1]!, done);
    unreserve();
    if (describe) this.described.add(image);
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

  private handle(message: DecodedClientMessage): Promise<void> | void {
    if (message.kind === 'hello') return this.hello(message.hello);
    const requestId = requestIdOf(message);
    const refusal = messageRefusal(message, { handshaken: this.welcomed, expired: this.access.expired });
    if (refusal) return this.refuse(refusal, requestId);
    const scheduler = this.ctx.scheduler;
    switch (message.kind) {
      case 'authenticate':
        return this.authenticate(requestId, message.authenticate.token);
      case 'listStudies': {
        const { offset, limit } = message.listStudies;
        const page = this.resolver.studies(offset, Math.min(limit || this.ctx.limits.maxPageSize, this.ctx.limits.maxPageSize));
        const answer = (list: Awaited<typeof page>) => this.outbox.control({ studyList: { requestId, ...list } });
        return page instanceof Promise ? page.then(answer) : answer(page);
      }
      case 'openSeries': {
        const uid = message.openSeries.seriesInstanceUid;
        const unknown = () => this.sendError(ErrorCode.UNKNOWN_SERIES, `no series ${printable(uid)}`, requestId);
        return this.resolver.series(uid)?.then((series) => {
          if (!series) return unknown();
          this.openedSeries.add(uid);
          for (const instance of series.instances) this.described.add(instance);
          this.outbox.control({ seriesManifest: { requestId, ...series } });
        }) ?? unknown();
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
        scheduler.updateGroup(this.id, groupId, { priority, focus, weight });
        this.ctx.kick();
        return;
      }
      case 'windowUpdate':
        scheduler.grant(this.id, message.windowUpdate.bytes);
        this.ctx.kick();
        return;
      case 'useHttpStream':
        if (!this.stream || this.streamUsed) return this.sendError(ErrorCode.MALFORMED_MESSAGE, 'no HTTP stream is attached to this connection', 0);
        this.streamUsed = true;
        this.outbox.switchTo(this.stream);
        return;
    }
  }

  /** The GET with this connection's key came: the stream is used once the client says so. */
  private attached(sink: HttpStreamSink): void {
    if (this.closed) return sink.close();
    this.stream = sink;
    // Once in use, the stream is the connection's only way out: losing it ends the connection.
    sink.onLost(() => {
      if (this.streamUsed) this.outbox.close(1001, 'HTTP stream closed');
      else this.stream = undefined;
    });
  }

  /** A new token in-band: the grant is replaced; a refused one leaves the old grant as it was. */
  private authenticate(requestId: number, token: string): Promise<void> {
    return this.access.login(token).then(
      (grant) => this.outbox.control({ authenticated: { requestId, expiresAt: grant.expiresAt === undefined ? 0 : Math.floor(grant.expiresAt / 1000) } }),
      (e: unknown) => this.sendError(ErrorCode.UNAUTHENTICATED, e instanceof AccessError ? e.message : 'the token is not valid', requestId),
    );
  }

  private hello({ protocolVersion, initialWindow, token, httpStream, httpStreamKey, payloadApart }: Hello): Promise<void> | void {
    const refusal = helloRefusal(protocolVersion, PROTOCOL_VERSION);
    if (refusal) {
      this.refuse(refusal, 0);
      this.outbox.close(1002, 'unsupported protocol version');
      return;
    }
    if (this.welcomed) return this.welcome(initialWindow, false, '');
    this.payloadApart = payloadApart;
    return this.access.login(token).then(() => this.welcome(initialWindow, httpStream, httpStreamKey), (e: unknown) => {
      // No, a wrong or an expired token: say why, then close (1008: policy violation).
      this.sendError(ErrorCode.UNAUTHENTICATED, e instanceof AccessError ? e.message : 'the token is not valid', 0);
      this.outbox.close(1008, 'unauthenticated');
    });
  }

  private welcome(initialWindow: number, httpStream: boolean, clientKey: string): void {
    if (this.closed) return;
    if (!this.welcomed) this.ctx.scheduler.addClient(this.id, { window: initialWindow });
    this.welcomed = true;
    if (httpStream && this.ctx.httpStreams) this.streamOffer = this.ctx.httpStreams.offer((sink) => this.attached(sink), clientKey);
    this.outbox.control({ welcome: welcomeOf(this.ctx, this.streamOffer?.key) });
  }

  /** Refused whole before anything is looked up; else the frames are found (loading series indexes) and queued. */
  private requestFrames(r: RequestFrames): Promise<void> | void {
    const scheduler = this.ctx.scheduler;
    const refusal = requestFramesRefusal(r, {
      isOpen: (id) => scheduler.hasRequest(this.id, id) || this.tallies.has(id),
      openRequests: scheduler.openRequests(this.id),
      queuedFrames: scheduler.queuedFrames(this.id),
      queuedFramesInAll: this.ctx.queuedFramesInAll(),
    }, this.ctx.limits);
    if (refusal) return this.refuse(refusal, r.requestId);
    const resolved = this.resolver.frames(r, performance.now());
    return resolved instanceof Promise ? resolved.then((f) => this.queueFrames(r, f)) : this.queueFrames(r, resolved);
  }

  private queueFrames(r: RequestFrames, { work, failures }: ResolvedFrames): void {
    const { requestId } = r;
    const tooMany = badFramesRefusal(failures.length, r.frames.length);
    if (tooMany) return this.refuse(tooMany, requestId);
    for (const f of failures) this.sendError(ErrorCode[f.code], f.message, requestId, f.sopInstanceUid, f.frameNumber);
    this.tallies.set(requestId, { sent: 0, failed: failures.length });
    if (work.length === 0) return this.complete(requestId, false);
    this.ctx.scheduler.enqueue(this.id, r.groupId || implicitGroup(requestId), work.map((w) => ({ ...w, requestId })), { priority: r.priority });
    this.ctx.kick();
  }

  private complete(requestId: number, cancelled: boolean): void {
    const tally = this.tallies.get(requestId) ?? { sent: 0, failed: 0 };
    this.tallies.delete(requestId);
    if (cancelled) this.ctx.stats.requestsCancelled++;
    this.outbox.control({ requestComplete: { requestId, framesSent: tally.sent, framesFailed: tally.failed, cancelled } });
  }

  // ---------------------------------------------------------------- errors

  private refuse(refusal: Refusal, requestId: number): void {
    this.sendError(ErrorCode[refusal.code], refusal.message, requestId);
  }

  private sendError(code: number, message: string, requestId: number, sopInstanceUid = '', frameNumber = 0): void {
    if (this.closed) return;
    this.ctx.stats.errors++;
    this.ctx.observe?.error(code);
    this.log.debug('error reply', { code: errorCodeName(code), requestId, message });
    this.outbox.control({ error: { requestId, code, message, sopInstanceUid, frameNumber } });
  }
}
