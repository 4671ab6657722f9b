// What every session shares with the server (its limits, the catalogue, the scheduler, how a
// chunk is read, the buffer pool and the counters), and what a session makes from it alone: the
// Welcome, and a frame chunk read into a pooled buffer.
import { PROTOCOL_VERSION, encodeServerMessage, type ServerMessage, type Welcome } from '../../shared/protocol.js';
import type { Catalogue } from '../index/catalogue.js';
import type { FrameBuffers } from '../files/frame-buffers.js';
import type { QueuedFrame } from './frame-resolver.js';
import type { Outbox } from './outbox.js';
import type { Chunk, Scheduler } from './scheduler.js';
import { withHeader } from '../files/headroom.js';
import type { HttpStreamOffer, HttpStreamSink } from './http-stream.js';

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

/**
 * Whole frames: `read` gives a frame's bytes, the frame cache's own (never to be modified) or a
 * reused buffer read ahead or read now, with the frames after it (`next`, as for ReadChunk) read
 * ahead; `recycle` takes them back once the socket has written them (it ignores the cache's).
 */
export interface WholeFrames {
  read(frame: QueuedFrame, next: QueuedFrame[]): Promise<Uint8Array>;
  recycle(bytes: Uint8Array): void;
}

export interface SessionContext {
  catalogue: () => Catalogue;
  scheduler: Scheduler<QueuedFrame>;
  /** Wakes the pump: there may be something to send. */
  kick: () => void;
  readChunk: ReadChunk;
  /** Frames sent whole (one chunk), without a copy where their buffer has room for the header. */
  wholeFrames?: WholeFrames;
  /** Frames to read ahead per group. */
  readahead: number;
  limits: SessionLimits;
  serverName: string;
  transferSyntaxes: string[];
  /** Chunk buffers shared by all sessions. */
  buffers: FrameBuffers;
  /** Counters shared by all sessions. */
  stats: { framesSent: number; bytesSent: number; errors: number; maxBufferedBytes: number; requestsCancelled: number };
  /** Frames queued over all connections now. */
  queuedFramesInAll: () => number;
  /** Offers clients that ask for one an HTTP stream (absent: the server offers none). */
  httpStreams?: { offer(attached: (sink: HttpStreamSink) => void, clientKey?: string): HttpStreamOffer | undefined };
  /** Told of every error reply (by code) and every frame sent (seconds from request to last chunk). */
  observe?: { error(code: number): void; frameSent(seconds: number): void };
}

export function welcomeOf(ctx: SessionContext, httpStreamKey = ''): Welcome {
  const l = ctx.limits;
  return {
    protocolVersion: PROTOCOL_VERSION,
    httpStreamKey,
    serverName: ctx.serverName,
    transferSyntaxes: ctx.transferSyntaxes,
    limits: {
      maxChunkBytes: l.chunkBytes, maxMessageBytes: l.maxMessageBytes, maxFramesPerRequest: l.maxFramesPerRequest,
      maxOpenRequests: l.maxOpenRequests, maxPageSize: l.maxPageSize, maxBufferedBytes: l.maxBufferedBytes,
      maxQueuedFrames: l.maxQueuedFrames, maxMessagesPerSecond: l.maxMessagesPerSecond,
    },
  };
}

/**
 * A chunk's messages, sent in order with nothing between them: the header with its payload behind
 * it, or (Hello.payload_apart) the header, then the payload on its own. `done` once the socket has
 * written them (or they are dropped); `unreserve` once they are handed to the outbox (or dropped):
 * until then their bytes count against the connection's bound as reserved, so that no other chunk
 * slips in between the read and the send.
 */
export interface ChunkMessage { messages: Uint8Array[]; done: () => void; unreserve: () => void }

/**
 * One chunk of a frame as a FrameChunk message (the instance's attributes with it when
 * `describe`); the frames the group sends next are passed on to be read ahead. A frame sent whole
 * goes as a view of its buffer (the cache's, or a reused one read ahead or now) with the header in
 * the room before the frame (headroom.ts); a chunk of a larger frame is read into a pooled buffer
 * behind its header.
 */
export async function readFrameChunk(chunk: Chunk<QueuedFrame>, describe: boolean, clientId: number, ctx: SessionContext, outbox: Outbox, apart: boolean): Promise<ChunkMessage> {
  const frame = chunk.item.frame;
  const header: ServerMessage = {
    frameChunk: {
      requestId: chunk.item.requestId, sopInstanceUid: frame.sopInstanceUid, frameNumber: frame.frameNumber, offset: chunk.offset,
      totalLength: chunk.item.length, instance: describe ? frame.file.image : null, bitOffset: frame.location.bitOffset, payloadFollows: apart,
    },
  };
  const next = chunk.offset === 0 ? ctx.scheduler.upcoming(clientId, chunk.groupId, ctx.readahead + 1).slice(1) : [];
  const whole = ctx.wholeFrames && chunk.offset === 0 && chunk.length === chunk.item.length ? ctx.wholeFrames : undefined;
  if (apart) {
    // The frame's bytes go as they are (the cache's own, shared by every client sending them now).
    const { buffer: head } = encodeServerMessage(header);
    const unreserve = outbox.reserve(head.length + chunk.length);
    try {
      if (whole) {
        const bytes = await whole.read(frame, next);
        return { messages: [head, bytes], done: () => whole.recycle(bytes), unreserve };
      }
      // On failure the payload's buffer is left to the garbage collector: a read may still be writing into it.
      const payload = ctx.buffers.take(chunk.length);
      await ctx.readChunk(frame, chunk.offset, chunk.length, payload, 0, next);
      return { messages: [head, payload], done: () => ctx.buffers.give(payload), unreserve };
    } catch (e) {
      unreserve();
      throw e;
    }
  }
  if (whole) {
    const { buffer: head } = encodeServerMessage(header);
    // Counted from now (synchronously after the scheduler chose it), so concurrent reads for this
    // client cannot overshoot the bound together.
    const unreserve = outbox.reserve(head.length + chunk.length);
    let bytes: Uint8Array;
    try {
      bytes = await whole.read(frame, next);
    } catch (e) {
      unreserve();
      throw e;
    }
    const viewed = withHeader(bytes, head);
    if (viewed) return { messages: [viewed.message], done: () => { viewed.release(); whole.recycle(bytes); }, unreserve };
    const buffer = ctx.buffers.take(head.length + chunk.length);
    buffer.set(head, 0);
    buffer.set(bytes, head.length);
    whole.recycle(bytes);
    return { messages: [buffer], done: () => ctx.buffers.give(buffer), unreserve };
  }
  const { buffer, payloadOffset } = encodeServerMessage(header, chunk.length, (n) => ctx.buffers.take(n));
  const unreserve = outbox.reserve(buffer.length);
  try {
    await ctx.readChunk(frame, chunk.offset, chunk.length, buffer, payloadOffset, next);
    return { messages: [buffer], done: () => ctx.buffers.give(buffer), unreserve };
  } catch (e) {
    unreserve();
    ctx.buffers.give(buffer);
    throw e;
  }
}
