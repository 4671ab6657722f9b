// dicomstream/client inside apps built by the bundlers viewers are built with: the package as
// `npm pack` makes it, installed into a fresh app whose page connects to a real server and
// decodes a frame of each WASM codec (JPEG baseline, JPEG-LS, JPEG 2000, HTJ2K) in the client's
// decode worker, in Chromium, with Vite's dev server, a Vite build and a webpack 5 build, and no
// bundler configuration at all. The pixels must equal the reference decodes.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { build as viteBuild, createServer as viteServer } from 'vite';
import webpack from 'webpack';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { withBrowser } from './helpers/browser.js';
import { corpusDir, filesDir, firstValue, manifest, sha256 } from './helpers/corpus.js';
import { packedApp, serveFolder } from './helpers/packed-app.js';
import { servedFiles } from './helpers/server.js';

/** The app's decoding page: decodes frame 1 of each instance named in its query, reports their sha256. */
const DECODE = `import { connect, decodeFrame } from 'dicomstream/client';
const params = new URLSearchParams(location.search);
async function run() {
  const client = await connect(params.get('server'));
  const out = {};
  for (const uid of JSON.parse(params.get('uids'))) {
    const frame = await client.getFrame(uid, 1);
    const { pixels } = await decodeFrame(frame.bytes, frame.instance);
    const digest = await crypto.subtle.digest('SHA-256', new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength));
    out[uid] = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  client.close();
  return out;
}
run().then((r) => { document.body.dataset.result = JSON.stringify(r); }, (e) => { document.body.dataset.error = String(e && e.stack || e); });
`;

/** The app's entry: the decoding page, or with ?series=… that series in a Cornerstone3D viewport. */
const MAIN = `if (new URLSearchParams(location.search).get('series')) {
  import('./cornerstone.js').then((m) => m.run());
} else {
  import('./decode.js');
}
`;

/** A Cornerstone3D stack viewport of one series, loaded through dicomstream/cornerstone. */
const CORNERSTONE = `import * as cornerstone from '@cornerstonejs/core';
import { registerDicomStream } from 'dicomstream/cornerstone';
const hex = async (a) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(a.buffer, a.byteOffset, a.byteLength)))].map((b) => b.toString(16).padStart(2, '0')).join('');
const params = new URLSearchParams(location.search);
export function run() {
  show(params.get('server'), params.get('series')).then((r) => { document.body.dataset.result = JSON.stringify(r); }, (e) => { document.body.dataset.error = String(e && e.stack || e); });
}
async function show(server, series) {
  await cornerstone.init();
  const ds = await registerDicomStream(cornerstone, { url: server });
  const imageIds = await ds.imageIdsForSeries(series);
  const element = document.createElement('div');
  element.style.width = '256px';
  element.style.height = '256px';
  document.body.appendChild(element);
  const engine = new cornerstone.RenderingEngine('engine');
  engine.enableElement({ viewportId: 'stack', type: cornerstone.Enums.ViewportType.STACK, element });
  const viewport = engine.getViewport('stack');
  const rendered = new Promise((ok) => element.addEventListener(cornerstone.Enums.Events.IMAGE_RENDERED, ok, { once: true }));
  await viewport.setStack(imageIds, 0);
  viewport.render();
  await rendered;
  const image = cornerstone.cache.getImage(imageIds[0]);
  const canvas = element.querySelector('canvas');
  return { imageIds, sha256: await hex(image.getPixelData()), type: image.getPixelData().constructor.name, canvas: canvas ? [canvas.width, canvas.height] : null };
}
`;

/** A transfer syntax decoded by each WASM codec. */
const CODEC_SYNTAXES: Record<string, string[]> = {
  'libjpeg-turbo': ['1.2.840.10008.1.2.4.50'],
  charls: ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81'],
  openjpeg: ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91'],
  openjph: ['1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203'],
};

describe('the client in bundled apps', () => {
  let dir: string;
  let app: string;
  let dicomstream: RunningServer;
  /** Per instance asked for: the reference sha256 of its decoded frame 1. */
  const expected = new Map<string, string>();
  /** The codecs those instances need. */
  const codecs: string[] = [];
  /** The CT slice's series, and the sha256 of its prescaled Int16 pixels. */
  let ctSeries: string;
  let ctSha: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-bundlers-'));
    // The app's own Cornerstone, and what Cornerstone itself needs in a bundled app: its vtk.js uses
    // xmlbuilder2, which imports Node's `events` (the npm polyfill of that name is what Cornerstone
    // apps install; nothing of dicomstream's needs it).
    app = packedApp(dir, { 'main.js': MAIN, 'decode.js': DECODE, 'cornerstone.js': CORNERSTONE }, ['@cornerstonejs/core', 'events']);

    // One corpus file for each codec the corpus has frames of (it has no HTJ2K), alone in a folder
    // so that no duplicate of its instance is served instead.
    const files = join(dir, 'files');
    mkdirSync(files);
    for (const [codec, syntaxes] of Object.entries(CODEC_SYNTAXES)) {
      const entry = manifest.files.find((m) => syntaxes.includes(m.transfer_syntax_uid ?? '') && m.frames?.[0]?.sha256);
      if (!entry) continue;
      copyFileSync(join(filesDir, entry.file), join(files, entry.file));
      expected.set(entry.sop_instance_uid!, entry.frames![0]!.sha256);
      codecs.push(codec);
    }
    assert.ok(codecs.length >= 3, `corpus files for ${codecs.join(', ')}`);
    // And a CT slice for the Cornerstone3D page, with what Cornerstone's loader would make of it.
    const ct = manifest.files.find((m) => m.file === 'CT_small.dcm')!;
    copyFileSync(join(filesDir, ct.file), join(files, ct.file));
    const stored = readFileSync(join(corpusDir, (ct as unknown as { frames: Array<{ reference_file: string }> }).frames[0]!.reference_file));
    const values = new Int16Array(stored.buffer.slice(stored.byteOffset, stored.byteOffset + stored.byteLength));
    const slope = firstValue(ct.rescale_slope) ?? 1;
    const intercept = firstValue(ct.rescale_intercept) ?? 0;
    ctSeries = ct.series_instance_uid!;
    ctSha = sha256(new Uint8Array(Int16Array.from(values, (v) => v * slope + intercept).buffer));
    dicomstream = await startServer({ root: files, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
    const served = await servedFiles(dicomstream.catalogue);
    assert.equal(served.length, expected.size + 1, 'every chosen file served');
  });

  after(async () => {
    await dicomstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Opens the app at `origin` in Chromium and returns what its page decoded. */
  async function decodedIn(origin: string, page = '/'): Promise<Record<string, string>> {
    return withBrowser(async (context) => {
      const tab = await context.newPage();
      const query = new URLSearchParams({ server: dicomstream.url, uids: JSON.stringify([...expected.keys()]) });
      await tab.goto(`${origin}${page}?${query}`);
      await tab.waitForFunction(() => document.body.dataset.result !== undefined || document.body.dataset.error !== undefined, null, { timeout: 60_000 });
      const error = await tab.evaluate(() => document.body.dataset.error);
      assert.equal(error, undefined, `the page failed: ${error}`);
      return JSON.parse((await tab.evaluate(() => document.body.dataset.result))!) as Record<string, string>;
    });
  }

  const assertReference = (got: Record<string, string>) => {
    for (const [uid, sha] of expected) assert.equal(got[uid], sha, `instance ${uid} decoded to the reference`);
  };

  /** Opens the app's Cornerstone3D page on the CT series: the image Cornerstone cached, rendered. */
  async function assertCornerstone(origin: string): Promise<void> {
    const got = await withBrowser(async (context) => {
      const tab = await context.newPage();
      await tab.goto(`${origin}/?${new URLSearchParams({ server: dicomstream.url, series: ctSeries })}`);
      await tab.waitForFunction(() => document.body.dataset.result !== undefined || document.body.dataset.error !== undefined, null, { timeout: 90_000 });
      const error = await tab.evaluate(() => document.body.dataset.error);
      assert.equal(error, undefined, `the Cornerstone page failed: ${error}`);
      return JSON.parse((await tab.evaluate(() => document.body.dataset.result))!) as { imageIds: string[]; sha256: string; type: string; canvas: number[] | null };
    });
    assert.equal(got.imageIds.length, 1);
    assert.match(got.imageIds[0]!, /^dicomstream:\/studies\/[\d.]+\/series\/[\d.]+\/instances\/[\d.]+\/frames\/1$/);
    assert.equal(got.type, 'Int16Array', 'prescaled CT in the array Cornerstone\'s loader uses');
    assert.equal(got.sha256, ctSha, 'Cornerstone holds the reference pixels, modality LUT applied');
    assert.ok(got.canvas && got.canvas[0]! > 0 && got.canvas[1]! > 0, 'the viewport rendered into its canvas');
  }

  it('works in a Vite dev server, worker and WASM found', async () => {
    const server = await viteServer({ root: app, logLevel: 'silent', configFile: false, server: { host: '127.0.0.1', port: 0, strictPort: false } });
    await server.listen();
    try {
      const address = server.httpServer?.address();
      assert.ok(address && typeof address === 'object');
      assertReference(await decodedIn(`http://127.0.0.1:${address.port}`));
      await assertCornerstone(`http://127.0.0.1:${address.port}`);
    } finally {
      await server.close();
    }
  });

  it('works in a Vite build: the worker and every codec\'s WASM are emitted and load', async () => {
    const outDir = join(app, 'dist-vite');
    await viteBuild({ root: app, logLevel: 'silent', configFile: false, build: { outDir, emptyOutDir: true } });
    const emitted = readdirSync(join(outDir, 'assets'));
    for (const name of ['decode-worker', 'openjpegwasm_decode', 'openjphjs', 'charlswasm_decode', 'libjpegturbowasm_decode']) {
      assert.ok(emitted.some((f) => f.startsWith(name)), `${name} emitted: ${emitted.join(', ')}`);
    }
    const { server, origin } = await serveFolder(outDir);
    try {
      assertReference(await decodedIn(origin));
      await assertCornerstone(origin);
    } finally {
      server.close();
    }
  });

  /** A webpack 5 production build of `entry` into `outDir`, with an index.html loading it. */
  async function webpackBuild(entry: string, outDir: string, resolve?: webpack.Configuration['resolve']): Promise<void> {
    const stats = await new Promise<webpack.Stats>((ok, fail) => {
      const compiler = webpack({ mode: 'production', context: app, entry, output: { path: outDir, clean: true }, performance: { hints: false }, ...(resolve ? { resolve } : {}) });
      compiler.run((err, result) => compiler.close(() => (err || !result ? fail(err ?? new Error('no stats')) : ok(result))));
    });
    assert.equal(stats.hasErrors(), false, stats.toString({ all: false, errors: true }));
    writeFileSync(join(outDir, 'index.html'), '<!doctype html><html><body><script src="main.js"></script></body></html>\n');
  }

  it('works in a webpack 5 build, with no configuration but the entry', async () => {
    const outDir = join(app, 'dist-webpack');
    await webpackBuild('./src/decode.js', outDir);
    assert.equal(readdirSync(outDir).filter((f) => f.endsWith('.wasm')).length, 4, 'the four codecs\' WASM emitted');
    const { server, origin } = await serveFolder(outDir);
    try {
      assertReference(await decodedIn(origin));
    } finally {
      server.close();
    }
  });

  it('dicomstream/cornerstone works in a webpack 5 Cornerstone3D app', async () => {
    // Cornerstone's vtk.js reaches Node's `url` (through xmlbuilder2): what every webpack app of
    // Cornerstone's sets; dicomstream adds nothing to it.
    const outDir = join(app, 'dist-webpack-cornerstone');
    await webpackBuild('./src/main.js', outDir, { fallback: { url: false } });
    const { server, origin } = await serveFolder(outDir);
    try {
      await assertCornerstone(origin);
    } finally {
      server.close();
    }
  });
});
