// The demo viewer in real headless Chromium against a real server: the first image appears, and
// its pixels equal values computed independently from the stored pixels of that frame at the
// window shown; scrolling and a window change are checked the same way; the progress bar fills.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { writeDicom } from '../server/sample/dicom-writer.js';
import { ensureSample } from '../server/sample/make-sample.js';
import { withBrowser } from './helpers/browser.js';
import { servedFiles } from './helpers/server.js';
import { filesDir, manifest } from './helpers/corpus.js';
import { expectedGrey, samples } from './helpers/expected-grey.js';

interface Shown { index: number; center: number; width: number; grey: number[]; width_px: number; height_px: number }

/** What the page shows: the frame index, the window and the canvas's red channel. */
async function shown(page: Page): Promise<Shown> {
  return page.evaluate(() => {
    const c = document.getElementById('image') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    const grey: number[] = new Array(d.length / 4);
    for (let i = 0; i < grey.length; i++) grey[i] = d[i * 4]!;
    const b = document.body.dataset;
    return { index: Number(b.shown), center: Number(b.windowCenter), width: Number(b.windowWidth), grey, width_px: c.width, height_px: c.height };
  });
}

describe('demo viewer in Chromium', () => {
  let sampleDir = '';
  let server: RunningServer;
  before(async () => {
    sampleDir = mkdtempSync(join(tmpdir(), 'dicomstream-e2e-'));
    await ensureSample(join(sampleDir, 'sample'));
    server = await startServer({ root: join(sampleDir, 'sample'), host: '127.0.0.1', port: 0, log: createLogger('silent') });
  });
  after(async () => {
    await server?.close();
    rmSync(sampleDir, { recursive: true, force: true });
  });

  /** The CT slice shown at a stack index, and the grey the viewer must draw for each pixel. */
  async function expectedFor(index: number, center: number, width: number): Promise<number[]> {
    const series = (await server.catalogue.series(server.catalogue.listStudies(0, 1).studies[0]!.series[0]!.seriesInstanceUid))!;
    const instance = series.instances[index]!;
    const file = (await server.catalogue.instance(instance.sopInstanceUid))!;
    const [offset, length] = file.frames[0]!.segments as [number, number];
    const stored = samples(readFileSync(file.path).subarray(offset, offset + length), instance.bitsAllocated, instance.pixelRepresentation === 1);
    return stored.map((v) => expectedGrey(v, { slope: instance.rescaleSlope, intercept: instance.rescaleIntercept, center, width }));
  }
  function assertSame(got: number[], want: number[], what: string): void {
    assert.equal(got.length, want.length, `${what}: size`);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    assert.ok(worst <= 1, `${what}: largest difference ${worst} grey levels`);
    assert.ok(new Set(want).size > 3, `${what}: the frame is not flat`);
  }

  it('shows the first image, scrolls, changes the window and fills the progress bar', async () => {
    await withBrowser(async (context) => {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const requested: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      const t0 = Date.now();
      await page.goto(server.url.replace('ws://', 'http://'));
      await page.waitForFunction(() => document.body.dataset.shown !== undefined, null, { timeout: 15_000 });
      const firstMs = Date.now() - t0;
      let s = await shown(page);
      assert.equal(s.width_px, 512);
      assertSame(s.grey, await expectedFor(s.index, s.center, s.width), `first image (after ${firstMs} ms)`);

      // Scroll down three slices with the wheel, over the image.
      const box = (await page.locator('#stage').boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      const before = s.index;
      for (let i = 0; i < 3; i++) await page.mouse.wheel(0, 120);
      await page.waitForFunction((b) => Number(document.body.dataset.shown) === b + 3, before, { timeout: 10_000 });
      s = await shown(page);
      assertSame(s.grey, await expectedFor(s.index, s.center, s.width), 'after scrolling');

      // A window preset from the list, then a drag on the image.
      const option = await page.locator('#preset option', { hasText: /bone/i }).first().getAttribute('value');
      await page.selectOption('#preset', option!);
      await page.waitForFunction(() => document.body.dataset.windowCenter === '400', null, { timeout: 5_000 });
      s = await shown(page);
      assert.equal(s.width, 1800);
      assertSame(s.grey, await expectedFor(s.index, 400, 1800), 'bone window');
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width / 2 + 40, box.y + box.height / 2 + 30, { steps: 4 });
      await page.mouse.up();
      s = await shown(page);
      assert.notEqual(s.center, 400, 'dragging changed the level');
      assertSame(s.grey, await expectedFor(s.index, s.center, s.width), 'dragged window');

      // Keyboard scrolling, and every frame of the series loads.
      await page.keyboard.press('ArrowUp');
      await page.waitForFunction((i) => Number(document.body.dataset.shown) === i - 1, s.index, { timeout: 5_000 });
      const total = (await server.catalogue.series(server.catalogue.listStudies(0, 1).studies[0]!.series[0]!.seriesInstanceUid))!.instances.length;
      await page.waitForFunction((t) => Number(document.body.dataset.loaded) === t, total, { timeout: 30_000 });
      const bar = await page.evaluate(() => { const p = document.getElementById('progress') as HTMLProgressElement; return { value: p.value, max: p.max }; });
      assert.deepEqual(bar, { value: total, max: total });
      assert.deepEqual(errors, []);
      // Uncompressed images only: no codec was fetched (neither its chunk nor its WASM).
      const codecs = requested.filter((u) => /\/codecs\/|\/(jpeg|htj2k|rle|openjpeg)[^/]*\.js$/.test(u));
      assert.deepEqual(codecs, [], 'no codec loaded for uncompressed images');
      assert.ok(requested.some((u) => u.endsWith('/assets/decode-worker.js')), 'frames were decoded in the worker');
    });
  });

  it('shows the RGB test card with the stored colours, decoded in a worker', async () => {
    const rgb = (await servedFiles(server.catalogue)).find((f) => f.image.photometricInterpretation === 'RGB')!;
    await withBrowser(async (context) => {
      const page = await context.newPage();
      await page.goto(`${server.url.replace('ws://', 'http://')}?series=${encodeURIComponent(rgb.series.seriesInstanceUid)}`);
      await page.waitForFunction(() => document.body.dataset.shown !== undefined, null, { timeout: 15_000 });
      const got = await page.evaluate(() => {
        const c = document.getElementById('image') as HTMLCanvasElement;
        return Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data);
      });
      const [offset, length] = rgb.frames[0]!.segments as [number, number];
      const stored = readFileSync(rgb.path).subarray(offset, offset + length);
      assert.equal(got.length, (stored.length / 3) * 4);
      let worst = 0;
      for (let i = 0; i < stored.length / 3; i++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(got[i * 4 + c]! - stored[i * 3 + c]!));
      assert.equal(worst, 0, 'canvas colours equal the stored RGB');
    });
  });

  it('says on the canvas when a frame\'s transfer syntax is not decoded, instead of a blank', async () => {
    // A JPEG XL file (a syntax the client has no decoder for), written by the project's own writer.
    const dir = join(sampleDir, 'jpeg-xl');
    mkdirSync(dir);
    const uid = (k: string) => `2.25.${1000 + k.length}${k.charCodeAt(0)}`;
    writeFileSync(join(dir, 'xl.dcm'), writeDicom([
      { tag: 0x00080016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' }, { tag: 0x00080018, vr: 'UI', value: uid('sop') },
      { tag: 0x0020000d, vr: 'UI', value: uid('study') }, { tag: 0x0020000e, vr: 'UI', value: uid('series') },
      { tag: 0x00280002, vr: 'US', value: 1 }, { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
      // Tall and narrow (64 × 1024): the message must still read at screen size, not shrink with the image.
      { tag: 0x00280010, vr: 'US', value: 1024 }, { tag: 0x00280011, vr: 'US', value: 64 },
      { tag: 0x00280100, vr: 'US', value: 8 }, { tag: 0x00280101, vr: 'US', value: 8 }, { tag: 0x00280102, vr: 'US', value: 7 },
      { tag: 0x00280103, vr: 'US', value: 0 },
      { tag: 0x7fe00010, vr: 'OB', value: { frames: [new Uint8Array([0xff, 0x0a, 1, 2, 3, 4])] } },
    ], '1.2.840.10008.1.2.4.110'));
    const xlServer = await startServer({ root: dir, host: '127.0.0.1', port: 0, log: createLogger('silent') });
    try {
      await withBrowser(async (context) => {
        const page = await context.newPage();
        await page.goto(xlServer.url.replace('ws://', 'http://'));
        await page.waitForFunction(() => document.body.dataset.message !== undefined, null, { timeout: 15_000 });
        const message = await page.evaluate(() => document.body.dataset.message!);
        assert.match(message, /JPEG XL Lossless/);
        const inked = await page.evaluate(() => {
          const c = document.getElementById('image') as HTMLCanvasElement;
          const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i]! > 100) n++;
          return n;
        });
        assert.ok(inked > 20, 'the message is drawn on the canvas');
        // The text's line height on screen (its tallest band of inked rows, in canvas pixels × the CSS scale), and how wide it runs.
        const inkOnScreen = () => page.evaluate(() => {
          const c = document.getElementById('image') as HTMLCanvasElement;
          const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
          let band = 0, tallest = 0, left = Infinity, right = -1;
          for (let y = 0; y < c.height; y++) {
            let inked = false;
            for (let x = 0; x < c.width; x++) if (d[(y * c.width + x) * 4]! > 100) { inked = true; left = Math.min(left, x); right = Math.max(right, x); }
            band = inked ? band + 1 : 0;
            tallest = Math.max(tallest, band);
          }
          const scale = c.getBoundingClientRect().height / c.height;
          return { line: tallest * scale, width: (right - left + 1) * scale, scale };
        });
        const fitted = await inkOnScreen();
        assert.ok(fitted.line >= 10 && fitted.line <= 30 && fitted.width >= 200, `the message reads at screen size: lines ${fitted.line.toFixed(1)} px high, ${fitted.width.toFixed(0)} px wide`);
        for (let i = 0; i < 3; i++) await page.keyboard.press('-');
        const zoomedOut = await inkOnScreen();
        assert.ok(zoomedOut.scale < fitted.scale * 0.7, `zoomed out (${fitted.scale} → ${zoomedOut.scale})`);
        assert.ok(Math.abs(zoomedOut.line - fitted.line) <= 0.25 * fitted.line, `lines as high zoomed out: ${fitted.line.toFixed(1)} → ${zoomedOut.line.toFixed(1)} px`);
      });
    } finally {
      await xlServer.close();
    }
  });

  it('decodes the compressed copies of the phantom (JPEG-LS, JPEG 2000) in workers, equal to the native slices', async () => {
    const compressed = server.catalogue.listStudies(0, 1).studies[0]!.series.filter((s) => /JPEG/.test(s.seriesDescription));
    assert.equal(compressed.length, 2, 'the sample has a JPEG-LS and a JPEG 2000 series');
    await withBrowser(async (context) => {
      for (const s of compressed) {
        const page = await context.newPage();
        await page.goto(`${server.url.replace('ws://', 'http://')}?series=${encodeURIComponent(s.seriesInstanceUid)}`);
        await page.waitForFunction(() => document.body.dataset.shown !== undefined || document.body.dataset.message !== undefined, null, { timeout: 15_000 });
        assert.equal(await page.evaluate(() => document.body.dataset.message), undefined, `${s.seriesDescription}: decoded`);
        const got = await shown(page);
        // The compressed slice k is the native slice k (lossless): compare with what the native file gives.
        const manifest = (await server.catalogue.series(s.seriesInstanceUid))!;
        const slice = manifest.instances[got.index]!.instanceNumber - 1;
        const native = (await server.catalogue.series(server.catalogue.listStudies(0, 1).studies[0]!.series[0]!.seriesInstanceUid))!;
        const nativeIndex = native.instances.findIndex((i) => i.instanceNumber === slice + 1);
        assertSame(got.grey, await expectedFor(nativeIndex, got.center, got.width), s.seriesDescription);
        await page.close();
      }
    });
  });

  it('takes frames over the HTTP stream, byte-exact, and decodes them rescaled in a worker from bytes handed over', async () => {
    const sop = server.catalogue.listStudies(0, 1).studies[0]!.series[0]!;
    const series = (await server.catalogue.series(sop.seriesInstanceUid))!;
    const stored = await Promise.all(series.instances.map(async (instance) => {
      const file = (await server.catalogue.instance(instance.sopInstanceUid))!;
      const [offset, length] = file.frames[0]!.segments as [number, number];
      return readFileSync(file.path).subarray(offset, offset + length);
    }));
    const want = stored.map((bytes) => createHash('sha256').update(bytes).digest('hex'));
    // The same page against a server that offers no HTTP stream: the client stays on the WebSocket.
    const plain = await startServer({ root: join(sampleDir, 'sample'), host: '127.0.0.1', port: 0, log: createLogger('silent'), httpStream: false, indexDir: false });
    try {
      await withBrowser(async (context) => {
        const page = await context.newPage();
        await page.goto(`${server.url.replace('ws://', 'http://')}assets/decode-worker.js`); // a same-origin page running nothing
        const got = await page.evaluate(async ({ seriesUid, plainUrl }) => {
          const bundle = '/assets/dicomstream-client.js';
          const api = await import(bundle) as typeof import('../web-client/browser.js');
          const client = await api.connect(`ws://${location.host}/`);
          const manifest = await client.openSeries(seriesUid);
          const hashes: string[] = new Array(manifest.instances.length);
          const index = new Map(manifest.instances.map((m, k) => [m.sopInstanceUid, k]));
          let rescaled: { min: number; max: number; type: string; detached: boolean; sum: number } | undefined;
          for await (const frame of client.requestFrames(manifest.instances.map((m) => ({ sopInstanceUid: m.sopInstanceUid, frameNumber: 1 })))) {
            const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', frame.bytes as Uint8Array<ArrayBuffer>));
            hashes[index.get(frame.sopInstanceUid)!] = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
            if (!rescaled) {
              const i = manifest.instances[index.get(frame.sopInstanceUid)!]!;
              const r = await api.decodeFrame(frame.bytes, i, { transfer: true, rescale: { slope: i.rescaleSlope, intercept: i.rescaleIntercept } });
              let sum = 0;
              for (let k = 0; k < r.pixels.length; k++) sum += r.pixels[k]!;
              rescaled = { min: r.min, max: r.max, type: r.pixels.constructor.name, detached: frame.bytes.byteLength === 0, sum };
            }
          }
          const transport = client.transport;
          client.close();
          const other = await api.connect(plainUrl);
          const plainTransport = other.transport;
          const listed = (await other.listStudies()).length;
          other.close();
          return { transport, hashes, rescaled, plainTransport, listed, firstUid: manifest.instances[0]!.sopInstanceUid };
        }, { seriesUid: sop.seriesInstanceUid, plainUrl: plain.url });
        assert.equal(got.transport, 'http-stream');
        assert.deepEqual(got.hashes, want, 'every frame byte-exact over the HTTP stream');
        assert.equal(got.plainTransport, 'websocket');
        assert.ok(got.listed > 0);
        // The first frame that arrived, rescaled in the worker: the modality LUT over the stored values.
        assert.ok(got.rescaled!.detached, 'the bytes were handed to the worker, not copied');
        const k = series.instances.findIndex((i) => i.sopInstanceUid === got.firstUid);
        const first = series.instances[k]!;
        const values = samples(stored[k]!, first.bitsAllocated, first.pixelRepresentation === 1).map((v) => v * first.rescaleSlope + first.rescaleIntercept);
        assert.equal(got.rescaled!.min, values.reduce((a, b) => Math.min(a, b)));
        assert.equal(got.rescaled!.max, values.reduce((a, b) => Math.max(a, b)));
        assert.equal(got.rescaled!.sum, values.reduce((a, b) => a + b, 0));
        assert.equal(got.rescaled!.type, 'Int16Array');
      });
    } finally {
      await plain.close();
    }
  });

  it('a decode pool closes: its pending and later decodes reject with POOL_TERMINATED, and closeDecoders() lets the next decodeFrame start anew', async () => {
    const sop = server.catalogue.listStudies(0, 1).studies[0]!.series[0]!;
    const first = (await server.catalogue.series(sop.seriesInstanceUid))!.instances[0]!.sopInstanceUid;
    await withBrowser(async (context) => {
      const page = await context.newPage();
      await page.goto(`${server.url.replace('ws://', 'http://')}assets/decode-worker.js`); // a same-origin page running nothing
      const got = await page.evaluate(async (uid) => {
        const bundle = '/assets/dicomstream-client.js';
        const api = await import(bundle) as typeof import('../web-client/browser.js');
        // No named functions in here: the test runner's transform would wrap them in a helper the page lacks.
        const client = await api.connect(`ws://${location.host}/`);
        const frame = await client.getFrame(uid, 1);
        client.close();
        const pool = api.createDecodePool(2);
        const decoded = (await pool.decode(frame.bytes, frame.instance!)).pixels.length;
        const runningBefore = pool.running;
        const pending = pool.decode(frame.bytes, frame.instance!).then(() => 'decoded', (e: { code?: string }) => e.code ?? String(e));
        pool.close();
        const later = pool.decode(frame.bytes, frame.instance!).then(() => 'decoded', (e: { code?: string }) => e.code ?? String(e));
        // The default pool: closed with closeDecoders(), a later decodeFrame starts a new one.
        const defaultPending = api.decodeFrame(frame.bytes, frame.instance!).then(() => 'decoded', (e: { code?: string }) => e.code ?? String(e));
        api.closeDecoders();
        const afterClose = (await api.decodeFrame(frame.bytes, frame.instance!)).pixels.length;
        api.closeDecoders();
        return { decoded, runningBefore, runningAfter: pool.running, pending: await pending, later: await later, defaultPending: await defaultPending, afterClose };
      }, first);
      const { rows, columns } = (await server.catalogue.series(sop.seriesInstanceUid))!.instances[0]!;
      assert.equal(got.decoded, rows * columns, 'the pool decodes');
      assert.equal(got.runningBefore, 1, 'one worker started for one decode');
      assert.equal(got.pending, 'POOL_TERMINATED', 'a decode pending at close rejects');
      assert.equal(got.later, 'POOL_TERMINATED', 'a decode after close rejects');
      assert.equal(got.runningAfter, 0, 'no worker left running');
      assert.equal(got.defaultPending, 'POOL_TERMINATED', 'closeDecoders() rejects what the default pool had pending');
      assert.equal(got.afterClose, rows * columns, 'decodeFrame after closeDecoders() starts a new pool');
    });
  });

  it('a decode pool decodes a high-priority frame before the low-priority ones still waiting for a worker', async () => {
    const sop = server.catalogue.listStudies(0, 1).studies[0]!.series[0]!;
    const first = (await server.catalogue.series(sop.seriesInstanceUid))!.instances[0]!.sopInstanceUid;
    const order = await withBrowser(async (context) => {
      const page = await context.newPage();
      await page.goto(`${server.url.replace('ws://', 'http://')}assets/decode-worker.js`);
      return page.evaluate(async (uid) => {
        const bundle = '/assets/dicomstream-client.js';
        const api = await import(bundle) as typeof import('../web-client/browser.js');
        const client = await api.connect(`ws://${location.host}/`);
        const frame = await client.getFrame(uid, 1);
        client.close();
        const pool = api.createDecodePool(1);
        const done: string[] = [];
        // A prefetch of 12 frames, then the one on screen.
        const low = Array.from({ length: 12 }, (_, i) => pool.decode(frame.bytes, frame.instance!, { priority: 0 }).then(() => { done.push(`low ${i}`); }));
        const high = pool.decode(frame.bytes, frame.instance!, { priority: 30 }).then(() => { done.push('high'); });
        await Promise.all([...low, high]);
        pool.close();
        return done;
      }, first);
    });
    assert.equal(order.length, 13);
    // One worker holds four decodes at a time: the four sent before it came, then the high one.
    assert.ok(order.indexOf('high') <= 4, `the high-priority frame decoded ${order.indexOf('high') + 1}th: ${order.join(', ')}`);
    assert.deepEqual(order.filter((o) => o !== 'high'), Array.from({ length: 12 }, (_, i) => `low ${i}`), 'the others in the order asked');
  });

  it('decodes every compressed corpus frame in Chromium\'s workers to the reference pixels', async () => {
    const corpusServer = await startServer({ root: filesDir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
    try {
      // Compressed instances the server serves, with the reference sha256 of each decoded frame.
      const wanted = (await servedFiles(corpusServer.catalogue))
        .filter((f) => f.image.encapsulated)
        .map((f) => ({ uid: f.image.sopInstanceUid, file: f.path.split('/').pop()!, frames: f.frames.length }))
        .map((w) => ({ ...w, hashes: manifest.files.find((m) => m.file === w.file)?.frames?.map((x) => x.sha256) ?? [] }))
        .filter((w) => w.hashes.length === w.frames);
      assert.ok(wanted.length >= 8, `${wanted.length} compressed corpus instances with references`);
      await withBrowser(async (context) => {
        const page = await context.newPage();
        await page.goto(`${corpusServer.url.replace('ws://', 'http://')}assets/decode-worker.js`); // a same-origin page running nothing
        const results = await page.evaluate(async (list) => {
          const bundle = '/assets/dicomstream-client.js';
          const api = await import(bundle) as typeof import('../web-client/browser.js');
          const client = await api.connect(`ws://${location.host}/`);
          const out: Array<{ file: string; frame: number; sha256: string; error?: string }> = [];
          for (const w of list) {
            for (let n = 1; n <= w.frames; n++) {
              try {
                const frame = await client.getFrame(w.uid, n);
                const { pixels } = await api.decodeFrame(frame.bytes, frame.instance!);
                const digest = await crypto.subtle.digest('SHA-256', new Uint8Array(pixels.buffer as ArrayBuffer, pixels.byteOffset, pixels.byteLength));
                out.push({ file: w.file, frame: n, sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') });
              } catch (e) {
                out.push({ file: w.file, frame: n, sha256: '', error: (e as Error).message });
              }
            }
          }
          client.close();
          return out;
        }, wanted.map(({ uid, file, frames }) => ({ uid, file, frames })));
        for (const r of results) {
          const expected = wanted.find((w) => w.file === r.file)!.hashes[r.frame - 1];
          assert.equal(r.sha256, expected, `${r.file}#${r.frame} decoded in the browser${r.error ? ': ' + r.error : ''}`);
        }
      });
    } finally {
      await corpusServer.close();
    }
  });
});
