// Progressive loading over a real server: the focused frame first, then outward; moving the focus
// brings the new frame next and re-orders the rest; progress reaches the frame count.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { SeriesLoader, connect, outwardOrder } from '../web-client/index.js';
import { withServer } from './helpers/server.js';

describe('series loader', () => {
  it('orders outward from the focus: p, p+1, p-1, p+2, …', () => {
    assert.deepEqual(outwardOrder(2, 6), [2, 3, 1, 4, 0, 5]);
    assert.deepEqual(outwardOrder(0, 3), [0, 1, 2]);
    assert.deepEqual(outwardOrder(9, 3), [2, 1, 0]);
    assert.deepEqual(outwardOrder(0, 0), []);
  });

  it('loads a multi-frame series outward from the focus, re-orders on a new focus, and reports progress', async () => {
    // Small chunks and a small send buffer keep most frames queued on the server while the focus moves.
    await withServer({ chunkSize: 1024, maxBuffered: 2048 }, async (server) => {
      // A small flow-control window keeps few frames in flight (the kernel would buffer them all).
      const c = await connect(server.url, { WebSocket, window: 2048 });
      try {
        const studies = await c.listStudies();
        const summary = studies.flatMap((s) => s.series).filter((s) => s.numberOfFrames >= 10).sort((a, b) => b.numberOfFrames - a.numberOfFrames)[0]!;
        const series = await c.openSeries(summary.seriesInstanceUid);
        const arrived: number[] = [];
        const progress: number[] = [];
        let focusMovedAt = -1;
        const done = new Promise<void>((resolve) => {
          const loader = new SeriesLoader(c, series, {
            onFrame: (ref) => {
              arrived.push(ref.index);
              if (arrived.length === 2) { focusMovedAt = arrived.length; loader.setFocus(loader.total - 1); }
            },
            onProgress: (loaded, total) => { progress.push(loaded); if (loaded === total) resolve(); },
          });
          loader.start(4);
        });
        await done;
        const total = summary.numberOfFrames;
        assert.deepEqual(arrived.slice(0, 2), [4, 5], 'the focus first, then its neighbour');
        assert.equal(new Set(arrived).size, total, 'every frame once');
        assert.deepEqual(progress, Array.from({ length: total }, (_, i) => i + 1));
        // After the focus moved to the last frame, it came within the next few frames (those already sent).
        const lastAt = arrived.indexOf(total - 1);
        assert.ok(lastAt >= focusMovedAt && lastAt <= focusMovedAt + 6, `new focus arrived ${lastAt - focusMovedAt} frames after the move`);
        const afterFocus = arrived.slice(lastAt + 1, lastAt + 3);
        assert.ok(afterFocus.every((i) => i >= total - 4), `then its neighbours: ${afterFocus.join(', ')}`);
      } finally {
        c.close();
      }
    });
  });
});
