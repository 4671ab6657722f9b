// 200 clients at once on loopback, each streaming a whole series: every frame arrives, byte-exact,
// none lost or doubled, and the server's memory stays bounded (its own counters and the process's).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../server/index.js';
import { writeTree } from '../server/sample/tree.js';
import { client, servedFiles, withServer } from './helpers/server.js';
import { sha256 } from './helpers/corpus.js';

const CLIENTS = 200;

describe('load', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-load-'));
    writeTree(dir, 40, { perSeries: 40, salt: 'load' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`serves ${CLIENTS} concurrent clients every frame byte-exact, with bounded memory`, async () => {
    await withServer({ root: dir, watch: false }, async (server) => {
      const files = await servedFiles(server.catalogue);
      const expected = new Map(files.map((f) => {
        const [offset, length] = f.frames[0]!.segments as [number, number];
        return [f.image.sopInstanceUid, sha256(readFileSync(f.path).subarray(offset, offset + length))];
      }));
      const memory = () => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
      const before = memory();
      let peak = before;
      const sampler = setInterval(() => { peak = Math.max(peak, memory()); }, 20);
      const t0 = performance.now();
      try {
        const clients = await Promise.all(Array.from({ length: CLIENTS }, () => client(server)));
        assert.equal(server.stats.connections, CLIENTS);
        const results = await Promise.all(clients.map(async (c) => {
          const [study] = await c.listStudies();
          const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
          const seen = new Map<string, number>();
          let bad = 0;
          for await (const f of c.requestFrames(series.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })))) {
            seen.set(f.sopInstanceUid, (seen.get(f.sopInstanceUid) ?? 0) + 1);
            if (sha256(f.bytes) !== expected.get(f.sopInstanceUid)) bad++;
          }
          c.close();
          return { frames: [...seen.values()].reduce((a, b) => a + b, 0), distinct: seen.size, bad };
        }));
        const seconds = (performance.now() - t0) / 1000;
        for (const r of results) assert.deepEqual(r, { frames: 40, distinct: 40, bad: 0 });
        assert.equal(server.stats.framesSent, CLIENTS * 40);
        // The server's bound on unsent bytes per connection held (plus one chunk).
        assert.ok(server.stats.maxBufferedBytes <= DEFAULT_LIMITS.maxBufferedBytes + DEFAULT_LIMITS.chunkBytes + 16 * 1024, `${server.stats.maxBufferedBytes} bytes unsent on one connection`);
        // 200 clients hold 200 × 40 × 8 KiB = 64 MB of frames here; the server adds bounded buffers, not copies per client.
        const grown = (peak - before) / 1048576;
        assert.ok(grown < 400, `memory grew by ${grown.toFixed(0)} MiB`);
        console.log(`${CLIENTS} clients, ${CLIENTS * 40} frames in ${seconds.toFixed(2)} s; memory grew by at most ${grown.toFixed(0)} MiB`);
      } finally {
        clearInterval(sampler);
      }
    });
  });
});
