// The refusal rules, one test per rule, with the server's default limits: what a message is
// refused for and with which code, before anything is looked up. Pure functions: no server here
// (test/hostile.test.ts checks a live server against these same rules).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../server/index.js';
import { RateLimit } from '../server/transport/rate-limit.js';
import {
  MAX_FRAME_ERRORS, MAX_UID_LENGTH, NO_LOAD, TEXT_MESSAGE, badFramesRefusal, helloRefusal, messageRefusal, printable, rateLimited,
  requestFramesRefusal, requestIdOf, type RequestLoad,
} from '../server/transport/refusals.js';
import { PROTOCOL_VERSION, type DecodedClientMessage, type FrameRef } from '../shared/protocol.js';

const limits = DEFAULT_LIMITS;
const frames = (n: number, uid = '1.2.3'): FrameRef[] => Array.from({ length: n }, (_, i) => ({ sopInstanceUid: uid, frameNumber: i + 1 }));
const request = (requestId: number, list: FrameRef[]) => ({ requestId, frames: list });
const load = (over: Partial<RequestLoad>): RequestLoad => ({ ...NO_LOAD, ...over });
const ready = { handshaken: true, expired: false };

describe('frame request refusals', () => {
  it('accepts a request within every limit', () => {
    assert.equal(requestFramesRefusal(request(1, frames(limits.maxFramesPerRequest)), NO_LOAD, limits), undefined);
  });

  it('request_id 0: MALFORMED_MESSAGE', () => {
    assert.equal(requestFramesRefusal(request(0, frames(1)), NO_LOAD, limits)?.code, 'MALFORMED_MESSAGE');
  });

  it('an id still open: DUPLICATE_REQUEST_ID, before any other limit', () => {
    const refusal = requestFramesRefusal(request(7, frames(limits.maxFramesPerRequest + 1)), load({ isOpen: (id) => id === 7 }), limits);
    assert.deepEqual(refusal, { code: 'DUPLICATE_REQUEST_ID', message: 'request 7 is still open' });
  });

  it('maxOpenRequests open already: TOO_MANY_REQUESTS', () => {
    assert.equal(requestFramesRefusal(request(1, frames(1)), load({ openRequests: limits.maxOpenRequests - 1 }), limits), undefined);
    const refusal = requestFramesRefusal(request(1, frames(1)), load({ openRequests: limits.maxOpenRequests }), limits);
    assert.equal(refusal?.code, 'TOO_MANY_REQUESTS');
    assert.match(refusal!.message, new RegExp(`at most ${limits.maxOpenRequests} open requests`));
  });

  it('more than maxFramesPerRequest frames: TOO_MANY_REQUESTS', () => {
    const refusal = requestFramesRefusal(request(1, frames(limits.maxFramesPerRequest + 1)), NO_LOAD, limits);
    assert.deepEqual(refusal, { code: 'TOO_MANY_REQUESTS', message: `at most ${limits.maxFramesPerRequest} frames per request` });
  });

  it('past maxQueuedFrames for the connection: TOO_MANY_REQUESTS', () => {
    const queued = limits.maxQueuedFrames - 10;
    assert.equal(requestFramesRefusal(request(1, frames(10)), load({ queuedFrames: queued }), limits), undefined);
    const refusal = requestFramesRefusal(request(1, frames(11)), load({ queuedFrames: queued }), limits);
    assert.equal(refusal?.code, 'TOO_MANY_REQUESTS');
    assert.match(refusal!.message, /frames queued per connection/);
  });

  it('a UID longer than MAX_UID_LENGTH: MALFORMED_MESSAGE, without echoing it', () => {
    const long = '1'.repeat(MAX_UID_LENGTH + 1);
    assert.equal(requestFramesRefusal(request(1, frames(1, '1'.repeat(MAX_UID_LENGTH))), NO_LOAD, limits), undefined);
    const refusal = requestFramesRefusal(request(1, frames(1, long)), NO_LOAD, limits);
    assert.equal(refusal?.code, 'MALFORMED_MESSAGE');
    assert.ok(!refusal!.message.includes(long));
  });

  it('past maxQueuedFramesInAll over all connections: TOO_MANY_REQUESTS', () => {
    const refusal = requestFramesRefusal(request(1, frames(2)), load({ queuedFramesInAll: limits.maxQueuedFramesInAll - 1 }), limits);
    assert.deepEqual(refusal, { code: 'TOO_MANY_REQUESTS', message: 'the server has too many frames queued: try again shortly' });
  });

  it(`more than MAX_FRAME_ERRORS (${MAX_FRAME_ERRORS}) bad frames: refused whole with MALFORMED_MESSAGE`, () => {
    assert.equal(badFramesRefusal(MAX_FRAME_ERRORS, 500), undefined);
    const refusal = badFramesRefusal(MAX_FRAME_ERRORS + 1, 500);
    assert.equal(refusal?.code, 'MALFORMED_MESSAGE');
    assert.match(refusal!.message, /^101 of the 500 frames .* request refused$/);
  });
});

describe('message refusals', () => {
  const list: DecodedClientMessage = { kind: 'listStudies', listStudies: { requestId: 3, offset: 0, limit: 0 } };

  it('anything but Hello before the handshake: HANDSHAKE_REQUIRED', () => {
    assert.equal(messageRefusal(list, { handshaken: false, expired: false })?.code, 'HANDSHAKE_REQUIRED');
    assert.equal(messageRefusal({ kind: 'hello', hello: { protocolVersion: PROTOCOL_VERSION, initialWindow: 0, token: '', clientName: 'test', httpStream: false, httpStreamKey: '', payloadApart: false } }, { handshaken: false, expired: true }), undefined);
  });

  it('an expired grant: UNAUTHENTICATED for requests, while Authenticate and flow control go on', () => {
    const expired = { handshaken: true, expired: true };
    for (const m of [list, { kind: 'openSeries', openSeries: { requestId: 1, seriesInstanceUid: '1' } }, { kind: 'requestFrames', requestFrames: { requestId: 1, frames: [], groupId: 0, priority: 0 } }] as DecodedClientMessage[]) {
      assert.equal(messageRefusal(m, expired)?.code, 'UNAUTHENTICATED', m.kind);
    }
    for (const m of [{ kind: 'authenticate', authenticate: { requestId: 1, token: 't' } }, { kind: 'cancel', cancel: { requestId: 1 } }, { kind: 'windowUpdate', windowUpdate: { bytes: 1 } }] as DecodedClientMessage[]) {
      assert.equal(messageRefusal(m, expired), undefined, m.kind);
    }
  });

  it('UpdateGroup of group 0: MALFORMED_MESSAGE', () => {
    const update = (groupId: number) => ({ kind: 'updateGroup', updateGroup: { groupId } }) as DecodedClientMessage;
    assert.equal(messageRefusal(update(0), ready)?.code, 'MALFORMED_MESSAGE');
    assert.equal(messageRefusal(update(4), ready), undefined);
  });

  it('a Hello of another protocol version: UNSUPPORTED_VERSION, naming both', () => {
    assert.equal(helloRefusal(PROTOCOL_VERSION, PROTOCOL_VERSION), undefined);
    assert.deepEqual(helloRefusal(PROTOCOL_VERSION + 1, PROTOCOL_VERSION), {
      code: 'UNSUPPORTED_VERSION', message: `protocol version ${PROTOCOL_VERSION + 1} is not served; this server speaks ${PROTOCOL_VERSION}`,
    });
  });

  it('text frames and rate limits have their codes', () => {
    assert.equal(TEXT_MESSAGE.code, 'MALFORMED_MESSAGE');
    assert.deepEqual(rateLimited(50), { code: 'RATE_LIMITED', message: 'over 50 messages a second: request refused' });
  });

  it('answers carry the request id of the message, 0 for those without one', () => {
    assert.equal(requestIdOf(list), 3);
    assert.equal(requestIdOf({ kind: 'cancel', cancel: { requestId: 9 } } as DecodedClientMessage), 9);
    assert.equal(requestIdOf({ kind: 'windowUpdate', windowUpdate: { bytes: 1 } } as DecodedClientMessage), 0);
  });

  it('quotes a UID short and printable', () => {
    assert.equal(printable('1.2\n3'), '"1.2?3"');
    assert.equal(printable('9'.repeat(200)).length, 80 + 3);
  });
});

describe('rate limit', () => {
  it('allows a burst of twice the rate, then the rate, on an injected clock', () => {
    let now = 0;
    const rate = new RateLimit(10, () => now);
    let taken = 0;
    while (rate.take()) taken++;
    assert.equal(taken, 20, 'a burst of twice the rate');
    now += 100; // 0.1 s: one token back
    assert.equal(rate.take(), true);
    assert.equal(rate.take(), false);
    now += 60_000; // refilled, but never past the burst
    taken = 0;
    while (rate.take()) taken++;
    assert.equal(taken, 20);
  });

  it('0 means no limit', () => {
    const rate = new RateLimit(0, () => 0);
    for (let i = 0; i < 10_000; i++) assert.equal(rate.take(), true);
  });
});
