// One client connection: the handshake, the answers to its requests, and the pump that sends
// frame chunks in priority order while the socket keeps up. Reads the next chunk only while less
// than `maxBufferedBytes` is unsent, so a client holds at most that plus one chunk (and small
// control messages), whatever it asks for.
import {
  ErrorCode, PROTOCOL_VERSION, ProtocolError, decodeClientMessage, encodeServerMessage, errorCodeName,
  type DecodedClientMessage, type RequestFrames, type ServerMessage,
} from '../../shared/protocol.js';
import type { Catalogue } from '../index/catalogue.js';
import type { FrameReader } from '../files/frame-reader.js';
import type { Logger } from '../log.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import { FrameQueue, type FrameRequest, type QueuedFrame } from './frame-queue.js';

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
}

export interface SessionContext {
  catalogue: () => Catalogue;
  reader: FrameReader;
  limits: SessionLimits;
  serverName: string;
  transferSyntaxes: string[];
  log: Logger;
  /** Chunk buffers shared by all sessions. */
  buffers: ChunkBuffers;
  /** Counters shared by all sessions. */
  stats: { framesSent: number; bytesSent: number; errors: number; maxBufferedBytes: number };
}

export class Session {
  private handshaken = false;
  private closed = false;
  private pumping = false;
  private buffered = 0;
  private readonly queue = new FrameQueue();
  /** Instances whose attributes went out on this connection: later frames' chunks leave them out. */
  private readonly described = new Set<string>();

  constructor(private readonly socket: SessionSocket, private readonly ctx: SessionContext, private readonly log: Logger) {}

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
    try {
      this.handle(message);
    } catch (e) {
      this.log.error('request failed', { error: (e as Error).stack ?? String(e) });
      this.sendError(ErrorCode.INTERNAL, 'internal error', requestIdOf(message));
    }
  }

  onClose(): void {
    this.closed = true;
    this.queue.clear();
  }

  private handle(message: DecodedClientMessage): void {
    if (message.kind === 'hello') {
      const version = message.hello.protocolVersion;
      if (version !== PROTOCOL_VERSION) {
        this.sendError(ErrorCode.UNSUPPORTED_VERSION, `protocol version ${version} is not served; this server speaks ${PROTOCOL_VERSION}`, 0);
        this.socket.close(1002, 'unsupported protocol version');
        this.closed = true;
        return;
      }
      this.handshaken = true;
      const l = this.ctx.limits;
      this.sendControl({
        welcome: {
          protocolVersion: PROTOCOL_VERSION,
          serverName: this.ctx.serverName,
          transferSyntaxes: this.ctx.transferSyntaxes,
          limits: {
            maxChunkBytes: l.chunkBytes, maxMessageBytes: l.maxMessageBytes, maxFramesPerRequest: l.maxFramesPerRequest,
            maxOpenRequests: l.maxOpenRequests, maxPageSize: l.maxPageSize,
          },
        },
      });
      return;
    }
    const requestId = requestIdOf(message);
    if (!this.handshaken) {
      this.sendError(ErrorCode.HANDSHAKE_REQUIRED, 'send Hello first', requestId);
      return;
    }
    switch (message.kind) {
      case 'listStudies': {
        const { offset, limit } = message.listStudies;
        const pageSize = Math.min(limit || this.ctx.limits.maxPageSize, this.ctx.limits.maxPageSize);
        this.sendControl({ studyList: { requestId, ...this.ctx.catalogue().listStudies(offset, pageSize) } });
        return;
      }
      case 'openSeries': {
        const uid = message.openSeries.seriesInstanceUid;
        const series = this.ctx.catalogue().series(uid);
        if (!series) this.sendError(ErrorCode.UNKNOWN_SERIES, `no series ${printable(uid)}`, requestId);
        else this.sendControl({ seriesManifest: { requestId, ...series } });
        return;
      }
      case 'requestFrames':
        this.requestFrames(message.requestFrames);
        return;
      case 'cancel': {
        const request = this.queue.remove(requestId);
        if (request) this.complete(request, true);
        return;
      }
    }
  }

  private requestFrames(r: RequestFrames): void {
    const { requestId } = r;
    if (requestId === 0) return this.sendError(ErrorCode.MALFORMED_MESSAGE, 'request_id must not be 0', 0);
    if (this.queue.has(requestId)) return this.sendError(ErrorCode.DUPLICATE_REQUEST_ID, `request ${requestId} is still open`, requestId);
    if (this.queue.size >= this.ctx.limits.maxOpenRequests) {
      return this.sendError(ErrorCode.TOO_MANY_REQUESTS, `at most ${this.ctx.limits.maxOpenRequests} open requests per connection`, requestId);
    }
    if (r.frames.length > this.ctx.limits.maxFramesPerRequest) {
      return this.sendError(ErrorCode.TOO_MANY_REQUESTS, `at most ${this.ctx.limits.maxFramesPerRequest} frames per request`, requestId);
    }
    const catalogue = this.ctx.catalogue();
    const frames: QueuedFrame[] = [];
    let failed = 0;
    for (const ref of r.frames) {
      const file = catalogue.instance(ref.sopInstanceUid);
      const fail = (code: number, text: string) => {
        failed++;
        this.sendError(code, text, requestId, ref.sopInstanceUid, ref.frameNumber);
      };
      if (!file) { fail(ErrorCode.UNKNOWN_INSTANCE, `no instance ${printable(ref.sopInstanceUid)}`); continue; }
      const location = file.frames[ref.frameNumber - 1];
      if (!location) { fail(ErrorCode.FRAME_OUT_OF_RANGE, `frame ${ref.frameNumber} of ${file.frames.length}`); continue; }
      frames.push({ file, location, sopInstanceUid: ref.sopInstanceUid, frameNumber: ref.frameNumber, sent: 0 });
    }
    const request = this.queue.add(requestId, r.priority, frames, failed);
    if (frames.length === 0) {
      this.queue.remove(requestId);
      this.complete(request, false);
      return;
    }
    void this.pump();
  }

  /** Sends chunks while there is work and room in the socket's buffer. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.buffered < this.ctx.limits.maxBufferedBytes) {
        const request = this.queue.peek();
        if (!request) break;
        await this.sendChunk(request);
      }
    } catch (e) {
      this.log.error('pump failed', { error: (e as Error).stack ?? String(e) });
    } finally {
      this.pumping = false;
    }
  }

  private async sendChunk(request: FrameRequest): Promise<void> {
    const frame = request.frames[request.next]!;
    const total = frame.location.length;
    const offset = frame.sent;
    const length = Math.min(this.ctx.limits.chunkBytes, total - offset);
    const describe = offset === 0 && !this.described.has(frame.sopInstanceUid);
    const header: ServerMessage = {
      frameChunk: {
        requestId: request.id, sopInstanceUid: frame.sopInstanceUid, frameNumber: frame.frameNumber, offset, totalLength: total,
        instance: describe ? frame.file.image : null, bitOffset: frame.location.bitOffset,
      },
    };
    const { buffer, payloadOffset } = encodeServerMessage(header, length, (n) => this.ctx.buffers.take(n));
    try {
      await this.ctx.reader.read(frame.file, frame.location, offset, length, buffer, payloadOffset);
    } catch (e) {
      this.ctx.buffers.give(buffer);
      if (this.isCurrent(request, frame)) {
        this.log.warn('frame unreadable', { file: frame.file.path, frame: frame.frameNumber, error: (e as Error).message });
        this.sendError(ErrorCode.FRAME_UNREADABLE, `frame ${frame.frameNumber} could not be read: ${(e as Error).message}`, request.id, frame.sopInstanceUid, frame.frameNumber);
        request.framesFailed++;
        this.advance(request);
      }
      return;
    }
    // Cancelled or closed while reading: the chunk is dropped.
    if (!this.isCurrent(request, frame)) {
      this.ctx.buffers.give(buffer);
      return;
    }
    this.send(buffer, true);
    if (describe) this.described.add(frame.sopInstanceUid);
    frame.sent += length;
    this.ctx.stats.bytesSent += length;
    if (frame.sent >= total) {
      request.framesSent++;
      this.ctx.stats.framesSent++;
      this.advance(request);
    }
  }

  private isCurrent(request: FrameRequest, frame: QueuedFrame): boolean {
    return !this.closed && this.queue.has(request.id) && request.frames[request.next] === frame;
  }

  private advance(request: FrameRequest): void {
    request.next++;
    if (request.next >= request.frames.length) {
      this.queue.remove(request.id);
      this.complete(request, false);
    }
  }

  private complete(request: FrameRequest, cancelled: boolean): void {
    this.sendControl({ requestComplete: { requestId: request.id, framesSent: request.framesSent, framesFailed: request.framesFailed, cancelled } });
  }

  private sendError(code: number, message: string, requestId: number, sopInstanceUid = '', frameNumber = 0): void {
    this.ctx.stats.errors++;
    this.log.debug('error reply', { code: errorCodeName(code), requestId, message });
    this.sendControl({ error: { requestId, code, message, sopInstanceUid, frameNumber } });
  }

  private sendControl(message: ServerMessage): void {
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
      if (this.queue.size > 0 && this.buffered < this.ctx.limits.maxBufferedBytes) void this.pump();
    });
  }
}

function requestIdOf(message: DecodedClientMessage): number {
  switch (message.kind) {
    case 'hello': return 0;
    case 'listStudies': return message.listStudies.requestId;
    case 'openSeries': return message.openSeries.requestId;
    case 'requestFrames': return message.requestFrames.requestId;
    case 'cancel': return message.cancel.requestId;
  }
}

/** A UID as it can be quoted in an error: short and without control characters. */
function printable(uid: string): string {
  const clean = uid.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(clean.length > 80 ? clean.slice(0, 80) + '…' : clean);
}
