// The wire encoding's own promises, beside what the server tests check end to end: a frame
// chunk's payload starts on an 8-byte boundary of its message whatever its header holds, and the
// padding that takes is invisible to a decoder.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeServerMessage, encodeServerMessage, PAYLOAD_ALIGNMENT, type ImageAttributesInit } from '../shared/protocol.js';

describe('frame chunk encoding', () => {
  it('starts every payload on an 8-byte boundary of its message, and decodes the same header and payload', () => {
    const instance: ImageAttributesInit = { sopInstanceUid: '1.2.3', rows: 512, columns: 512, bitsAllocated: 16, photometricInterpretation: 'MONOCHROME2' };
    let offsets = new Set<number>();
    // UIDs of every length from 1 to 64 (and an instance's attributes on some) move the header's
    // length over every remainder and across the length prefixes' 128-byte step.
    for (let n = 1; n <= 64; n++) {
      for (const described of [false, true]) {
        const uid = '1.'.repeat(64).slice(0, n);
        const header = { requestId: 7, sopInstanceUid: uid, frameNumber: 3, offset: 0, totalLength: 24, bitOffset: 0, instance: described ? { ...instance, sopClassUid: 'x'.repeat(n * 2) } : null };
        const { buffer, payloadOffset } = encodeServerMessage({ frameChunk: header }, 24);
        assert.equal(payloadOffset % PAYLOAD_ALIGNMENT, 0, `uid of ${n} characters${described ? ', described' : ''}: payload at ${payloadOffset}`);
        buffer.set(Uint8Array.from({ length: 24 }, (_, i) => i + 1), payloadOffset);
        const decoded = decodeServerMessage(buffer);
        assert.ok(decoded.kind === 'frameChunk');
        assert.equal(decoded.frameChunk.sopInstanceUid, uid);
        assert.equal(decoded.frameChunk.frameNumber, 3);
        assert.equal(decoded.frameChunk.instance?.sopClassUid ?? null, described ? 'x'.repeat(n * 2) : null);
        assert.deepEqual([...decoded.payload], Array.from({ length: 24 }, (_, i) => i + 1));
        offsets = offsets.add(payloadOffset);
      }
    }
    assert.ok(offsets.size > 4, 'headers of many lengths were tried');
  });
});
