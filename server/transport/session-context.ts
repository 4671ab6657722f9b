// What every session shares with the server (its limits, the catalogue, the scheduler, how a
// chunk is read, the buffer pool and the counters), and what a session makes from it alone: the
// Welcome, and a frame chunk read into a pooled buffer.
import { PROTOCOL_VERSION, encodeServerMessage, type ServerMessage, type Welcome } from '../../shared/protocol.js';
import type { Catalogue } from '../index/catalogue.js';
import type { ChunkBuffers } from './chunk-buffers.js';
import type { QueuedFrame } from './frame-resolver.js';
import type { Outbox } from './outbox.js';
import type { Chunk, Scheduler } from './scheduler.js';

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
  stats: { framesSent: number; bytesSent: number; errors: number; maxBufferedBytes: number; requestsCancelled: number };
  /** Frames queued over all connections now. */
  queuedFramesInAll: () => number;
  /** Told of every error reply (by code) and every frame sent (seconds from request to last chunk). */
  observe?: { error(code: number): void; frameSent(seconds: number): void };
}

export function welcomeOf(ctx: SessionContext): Welcome {
  const l = ctx.limits;
  return {
    protocolVersion: PROTOCOL_VERSION,
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
 * One chunk of a frame as a FrameChunk message in a pooled buffer (the instance's attributes
 * with it when `describe`), its bytes read into place; the frames the group sends next are
 * passed on to be read ahead. On a read error the buffer goes back to the pool.
 */
export async function readFrameChunk(chunk: Chunk<QueuedFrame>, describe: boolean, clientId: number, ctx: SessionContext, outbox: Outbox): Promise<Uint8Array> {
  const frame = chunk.item.frame;
  const header: ServerMessage = {
    frameChunk: {
      requestId: chunk.item.requestId, sopInstanceUid: frame.sopInstanceUid, frameNumber: frame.frameNumber, offset: chunk.offset,
      totalLength: chunk.item.length, instance: describe ? frame.file.image : null, bitOffset: frame.location.bitOffset,
    },
  };
  const { buffer, payloadOffset } = encodeServerMessage(header, chunk.length, (n) => ctx.buffers.take(n));
  // Counted from now (synchronously after the scheduler chose it), so concurrent reads for this
  // client cannot overshoot the bound together.
  const release = outbox.reserve(buffer.length);
  try {
    const next = chunk.offset === 0 ? ctx.scheduler.upcoming(clientId, chunk.groupId, ctx.readahead + 1).slice(1) : [];
    await ctx.readChunk(frame, chunk.offset, chunk.length, buffer, payloadOffset, next);
    return buffer;
  } catch (e) {
    ctx.buffers.give(buffer);
    throw e;
  } finally {
    release();
  }
}
