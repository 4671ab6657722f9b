// dicomstream/cornerstone in a Cornerstone3D app in Chromium, side by side with Cornerstone's own
// DICOM image loader: the app is built with Vite from the packed package, with
// @cornerstonejs/core and @cornerstonejs/dicom-image-loader from npm. Every corpus image frame is
// loaded through `dicomstream:` and through `wadors:` (Cornerstone's loader, from dicomstream's
// DICOMweb on the same server), and the two IImages must hold the same pixels, in the same array
// type, with the same display attributes; each series is shown in a StackViewport. On the
// synthetic CT: scrolling moves the image on screen and the server's order, a volume viewport
// fills from `dicomstream:` imageIds, and cancelling or decaching reaches the server.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { build as viteBuild } from 'vite';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { ensureSample } from '../server/sample/make-sample.js';
import { withBrowser } from './helpers/browser.js';
import { corpusDir, filesDir, firstValue, manifest, sha256, type ManifestFile } from './helpers/corpus.js';
import { packedApp, serveFolder } from './helpers/packed-app.js';

/** The app: one page per job, picked by ?job=. Results go to body[data-result] (or data-error). */
const MAIN = `import * as cornerstone from '@cornerstonejs/core';
import { init as initDicomImageLoader, wadors } from '@cornerstonejs/dicom-image-loader';
import { registerDicomStream } from 'dicomstream/cornerstone';
const params = new URLSearchParams(location.search);
const hex = async (a) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', new Uint8Array(a.buffer, a.byteOffset, a.byteLength)))].map((b) => b.toString(16).padStart(2, '0')).join('');
const FIELDS = ['rows', 'columns', 'color', 'rgba', 'numberOfComponents', 'minPixelValue', 'maxPixelValue', 'slope', 'intercept',
  'windowCenter', 'windowWidth', 'voiLUTFunction', 'invert', 'columnPixelSpacing', 'rowPixelSpacing', 'sizeInBytes'];
async function summary(image) {
  const pixels = image.getPixelData();
  const out = { type: pixels.constructor.name, length: pixels.length, sha256: await hex(pixels) };
  for (const f of FIELDS) out[f] = image[f] ?? null;
  return out;
}
function viewportOn(engine, id, type) {
  const element = document.createElement('div');
  element.style.width = '256px';
  element.style.height = '256px';
  document.body.appendChild(element);
  engine.enableElement({ viewportId: id, type, element });
  return { element, viewport: engine.getViewport(id) };
}
const rendered = (element) => new Promise((ok) => element.addEventListener(cornerstone.Enums.Events.IMAGE_RENDERED, ok, { once: true }));

/** Every frame of each target series through both loaders; each series shown in a StackViewport. */
async function compare() {
  const out = [];
  const engine = new cornerstone.RenderingEngine('compare');
  const { element, viewport } = viewportOn(engine, 'stack', cornerstone.Enums.ViewportType.STACK);
  for (const { server, web, series } of JSON.parse(params.get('targets'))) {
    const ds = await registerDicomStream(cornerstone, { url: server });
    const ids = await ds.imageIdsForSeries(series);
    const metadata = new Map();
    for (const id of ids) {
      const path = id.slice('dicomstream:'.length);
      const wadoId = 'wadors:' + web + path;
      const instance = path.replace(/\\/frames\\/.*/, '');
      if (!metadata.has(instance)) metadata.set(instance, (await (await fetch(web + instance + '/metadata')).json())[0]);
      wadors.metaDataManager.add(wadoId, metadata.get(instance));
      // A loader that never settles (Cornerstone's, on some files) is an error, not a hung page.
      const load = (imageId) => Promise.race([cornerstone.imageLoader.loadImage(imageId), new Promise((_, fail) => setTimeout(() => fail(new Error('no answer in 10 s')), 10_000))]);
      const [ours, theirs] = await Promise.all([id, wadoId].map((imageId) => load(imageId).then(summary, (e) => ({ error: String(e && e.message || e) }))));
      out.push({ server, id, ours, theirs });
    }
    const shown = rendered(element);
    await viewport.setStack(ids, 0);
    viewport.render();
    await shown;
    out.find((r) => r.id === ids[0] && r.server === server).shown = viewport.getCurrentImageId() === ids[0] && !!element.querySelector('canvas');
    ds.close();
    // The next server may serve other encodings under the same imageIds.
    cornerstone.cache.purgeCache();
  }
  return out;
}

/** The synthetic CT prefetched from its first image while the user scrolls to image 100. */
async function scroll() {
  const ds = await registerDicomStream(cornerstone, { url: params.get('server'), window: 2 * 1024 * 1024 });
  const ids = await ds.imageIdsForSeries(params.get('series'));
  const engine = new cornerstone.RenderingEngine('scroll');
  const { element, viewport } = viewportOn(engine, 'stack', cornerstone.Enums.ViewportType.STACK);
  let shown = rendered(element);
  await viewport.setStack(ids, 0);
  await shown;
  const arrived = [];
  const loads = ids.map((id, i) => cornerstone.imageLoader.loadAndCacheImage(id, { requestType: 'prefetch' }).then(() => arrived.push(i)));
  shown = rendered(element);
  await viewport.setImageIdIndex(100);
  await shown;
  await Promise.all(loads);
  return { arrived, current: ids.indexOf(viewport.getCurrentImageId()), count: ids.length, transport: ds.client.transport };
}

/** A volume viewport on the synthetic CT: its voxels, and a slice of it loaded as an image. */
async function volume() {
  const ds = await registerDicomStream(cornerstone, { url: params.get('server') });
  const ids = await ds.imageIdsForSeries(params.get('series'));
  const engine = new cornerstone.RenderingEngine('volume');
  const { element, viewport } = viewportOn(engine, 'sagittal', cornerstone.Enums.ViewportType.ORTHOGRAPHIC);
  viewport.setOrientation(cornerstone.Enums.OrientationAxis.SAGITTAL);
  const volume = await cornerstone.volumeLoader.createAndCacheVolume('cornerstoneStreamingImageVolume:ct', { imageIds: ids });
  const loaded = new Promise((ok, fail) => volume.load((e) => (e.error ? fail(e.error) : e.framesProcessed === e.totalNumFrames && ok())));
  await viewport.setVolumes([{ volumeId: volume.volumeId }]);
  await loaded;
  const shown = rendered(element);
  viewport.render();
  await shown;
  const voxels = volume.voxelManager.getCompleteScalarDataArray();
  const sliceSize = volume.dimensions[0] * volume.dimensions[1];
  const slices = {};
  for (const k of [0, 57, ids.length - 1]) {
    const image = await cornerstone.imageLoader.loadImage(volume.imageIds[k]);
    slices[k] = { inVolume: await hex(voxels.slice(k * sliceSize, (k + 1) * sliceSize)), image: await hex(image.getPixelData()) };
  }
  return { dimensions: volume.dimensions, count: ids.length, slices, type: voxels.constructor.name, canvas: !!element.querySelector('canvas') };
}

/** Loads of the synthetic CT cancelled (imageLoader.cancelLoadImages) and decached (cache.removeImageLoadObject). */
async function cancel() {
  const ds = await registerDicomStream(cornerstone, { url: params.get('server'), window: 1024 * 1024 });
  const ids = await ds.imageIdsForSeries(params.get('series'));
  const outcomes = ids.slice(0, 80).map((id) => cornerstone.imageLoader.loadAndCacheImage(id, { requestType: 'prefetch' }).then(() => 'loaded', (e) => e.code || String(e)));
  cornerstone.imageLoader.cancelLoadImages(ids.slice(0, 40));
  for (const id of ids.slice(40, 80)) cornerstone.cache.removeImageLoadObject(id, { force: true });
  const settled = await Promise.all(outcomes);
  // And the connection carries on: a cancelled image loads when asked again.
  const again = await cornerstone.imageLoader.loadAndCacheImage(ids[50]);
  return { cancelled: settled.slice(0, 40), decached: settled.slice(40), again: again.getPixelData().length };
}

const jobs = { compare, scroll, volume, cancel };
(async () => {
  await cornerstone.init();
  initDicomImageLoader({ maxWebWorkers: 1 });
  cornerstone.volumeLoader.registerVolumeLoader('cornerstoneStreamingImageVolume', cornerstone.cornerstoneStreamingImageVolumeLoader);
  return jobs[params.get('job')]();
})().then((r) => { document.body.dataset.result = JSON.stringify(r); }, (e) => { document.body.dataset.error = String(e && e.stack || e); });
`;

describe('dicomstream/cornerstone beside Cornerstone\'s own loader, in Chromium', () => {
  let dir: string;
  let origin: string;
  let closeApp: () => void;
  const servers: RunningServer[] = [];
  /** Per server: the series it serves. */
  const targets: Array<{ server: string; web: string; series: string }> = [];
  /** Per server URL: the corpus file of each SOP Instance UID it serves. */
  const fileOf = new Map<string, Map<string, string>>();
  let sample: RunningServer;
  let sampleSeries: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-cornerstone-browser-'));
    const app = packedApp(dir, { 'main.js': MAIN }, ['@cornerstonejs/core', '@cornerstonejs/dicom-image-loader', '@cornerstonejs/metadata', 'events']);
    // Cornerstone's loader runs its decoders in a module worker that imports chunks: Vite must
    // emit workers as ES modules (what Cornerstone's own Vite set-up says); dicomstream needs nothing.
    const outDir = join(app, 'dist');
    await viteBuild({ root: app, logLevel: 'silent', configFile: false, worker: { format: 'es' }, build: { outDir, emptyOutDir: true } });
    const served = await serveFolder(outDir);
    origin = served.origin;
    closeApp = () => served.server.close();

    // Every corpus image file, in as many folders as it takes for no instance to be served twice
    // in one (the corpus has several encodings of some instances).
    const folders: Array<Map<string, string>> = [];
    for (const entry of manifest.files) {
      if (!isServedImage(entry)) continue;
      let folder = folders.find((f) => !f.has(entry.sop_instance_uid!));
      if (!folder) folders.push(folder = new Map());
      folder.set(entry.sop_instance_uid, entry.file);
    }
    for (const [k, folder] of folders.entries()) {
      const root = join(dir, `files-${k}`);
      mkdirSync(root);
      // Gzip-wrapped corpus files are served as what they wrap.
      for (const file of folder.values()) {
        if (file.endsWith('.gz')) writeFileSync(join(root, file.slice(0, -3)), gunzipSync(readFileSync(join(filesDir, file))));
        else copyFileSync(join(filesDir, file), join(root, file));
      }
      const server = await startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
      servers.push(server);
      fileOf.set(server.url, folder);
      const catalogue = server.catalogue;
      for (const series of catalogue.listStudies(0, catalogue.studyCount).studies.flatMap((s) => s.series.map((e) => e.seriesInstanceUid))) targets.push({ server: server.url, web: `http://127.0.0.1:${server.port}/dicomweb`, series });
    }
    const sampleDir = join(dir, 'sample');
    await ensureSample(sampleDir);
    sample = await startServer({ root: sampleDir, host: '127.0.0.1', port: 0, log: createLogger('silent'), indexDir: false });
    servers.push(sample);
    const sampleStudy = sample.catalogue.listStudies(0, 1).studies[0]!;
    sampleSeries = sampleStudy.series.find((e) => e.modality === 'CT')!.seriesInstanceUid;
  });

  after(async () => {
    closeApp?.();
    for (const s of servers) await s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function run<T>(query: Record<string, string>): Promise<T> {
    return withBrowser(async (context) => {
      const tab = await context.newPage();
      // What the page said last, for a failure's message.
      const said: string[] = [];
      tab.on('console', (m) => { if (!m.text().trim() || m.text().startsWith('[INFO]')) return; said.push(`${m.type()}: ${m.text()}`.slice(0, 500)); if (said.length > 20) said.shift(); });
      tab.on('response', (r) => { if (r.status() >= 400) said.push(`HTTP ${r.status()} ${r.url()}`); });
      tab.on('pageerror', (e) => { said.push(`pageerror: ${e.message}`); if (said.length > 20) said.shift(); });
      await tab.goto(`${origin}/?${new URLSearchParams(query)}`);
      await tab.waitForFunction(() => document.body.dataset.result !== undefined || document.body.dataset.error !== undefined, null, { timeout: 110_000 })
        .catch((e: Error) => { throw new Error(`${e.message}\nthe page said:\n${said.join('\n')}`); });
      const error = await tab.evaluate(() => document.body.dataset.error);
      assert.equal(error, undefined, `the page failed: ${error}\nit said:\n${said.join('\n')}`);
      return JSON.parse((await tab.evaluate(() => document.body.dataset.result))!) as T;
    });
  }

  it('gives Cornerstone the IImage its own wadors: loader gives, for every corpus frame, and shows each series', async () => {
    type Summary = Record<string, unknown> & { sha256?: string; type?: string; error?: string };
    const got = await run<Array<{ server: string; id: string; ours: Summary; theirs: Summary; shown?: boolean }>>({ job: 'compare', targets: JSON.stringify(targets) });
    if (process.env.CB_DUMP) writeFileSync(process.env.CB_DUMP, JSON.stringify(got));
    const frames = manifest.files.filter(isServedImage).reduce((n, m) => n + m.frames!.length, 0);
    assert.equal(got.length, frames, 'every frame of every corpus image loaded through both loaders');
    const cornerstoneWrong: string[] = [];
    let checked = 0;
    let same = 0;
    for (const { server, id, ours, theirs } of got) {
      const sop = id.match(/\/instances\/([^/]+)/)![1]!;
      const frameNumber = Number(id.match(/\/frames\/(\d+)$/)![1]);
      const entry = manifest.files.find((m) => m.file === fileOf.get(server)!.get(sop))!;
      const where = `${entry.file} frame ${frameNumber}`;
      assert.equal(ours.error, undefined, `${where}: dicomstream loaded it`);
      assert.equal(ours.length, (ours.rows as number) * (ours.columns as number) * (ours.numberOfComponents as number), `${where}: a value for each pixel and component`);
      // The reference decode, as the values Cornerstone holds (modality LUT applied) in our array type.
      const reference = cornerstoneReference(entry, frameNumber, ours.type!);
      if (reference) {
        assert.deepEqual([ours.sha256, ours.minPixelValue, ours.maxPixelValue], [reference.sha256, reference.min, reference.max], `${where}: the reference pixels`);
        checked++;
      }
      const theirReference = theirs.type === undefined ? undefined : cornerstoneReference(entry, frameNumber, theirs.type);
      // Not a whole image (native YBR_FULL_422 is handed over as its 2 samples a pixel, not converted).
      const partial = theirs.error === undefined && theirs.length !== (theirs.rows as number) * (theirs.columns as number) * (theirs.numberOfComponents as number);
      if (theirs.error !== undefined || partial || (theirReference && (theirs.sha256 !== theirReference.sha256 || theirs.minPixelValue !== theirReference.min || theirs.maxPixelValue !== theirReference.max))) {
        cornerstoneWrong.push(`${where}: ${theirs.error ?? (partial ? `${String(theirs.length)} samples for ${String(theirs.rows)}×${String(theirs.columns)}×${String(theirs.numberOfComponents)}` : 'not the reference values')}`);
        continue;
      }
      assert.deepEqual(ours, theirs, `${where}: the IImage Cornerstone's own loader makes`);
      same++;
    }
    const seriesShown = got.filter((r) => r.shown).length;
    assert.equal(seriesShown, targets.length, 'each series shown in a StackViewport');
    // Where Cornerstone's own loader fails or decodes wrongly, dicomstream still gives the reference.
    console.log(`# ${got.length} frames: ${same} the same IImage as Cornerstone's wadors: loader, ${checked} the reference pixels; Cornerstone's loader wrong or failing on ${cornerstoneWrong.length}:\n#   ${cornerstoneWrong.join('\n#   ')}`);
    assert.ok(same >= got.length * 0.9, `${same} of ${got.length} the same as Cornerstone's loader`);
  });

  it('scrolling a StackViewport moves the image on screen and what the server sends next', async () => {
    const got = await run<{ arrived: number[]; current: number; count: number; transport: string }>({ job: 'scroll', server: sample.url, series: sampleSeries });
    assert.equal(got.transport, 'http-stream', 'a page from another origin takes the frames over the HTTP stream (CORS)');
    assert.equal(got.current, 100, 'the viewport shows image 100');
    assert.equal(got.arrived.length, got.count, 'every image of the prefetch arrived');
    const at = (i: number) => got.arrived.indexOf(i);
    assert.ok(at(100) < at(30), `image 100 (arrived ${at(100)}th) before image 30 (${at(30)}th)`);
    assert.ok(at(98) < at(40) && at(102) < at(40), 'the neighbours of the image on screen before images far from it');
  });

  it('fills a volume viewport from dicomstream: imageIds, slice for slice the images', async () => {
    const got = await run<{ dimensions: number[]; count: number; type: string; canvas: boolean; slices: Record<string, { inVolume: string; image: string }> }>({ job: 'volume', server: sample.url, series: sampleSeries });
    const series = (await sample.catalogue.openSeries(sampleSeries))!;
    const first = [...series.files.values()][0]!.image;
    assert.deepEqual(got.dimensions, [first.columns, first.rows, got.count]);
    assert.equal(got.count, series.files.size);
    assert.ok(got.canvas, 'the volume viewport rendered');
    for (const [k, { inVolume, image }] of Object.entries(got.slices)) assert.equal(inVolume, image, `volume slice ${k} holds the image's pixels`);
  });

  it('cancelling and decaching images reaches the server: their frames are not sent', async () => {
    const before = { ...sample.stats };
    const got = await run<{ cancelled: string[]; decached: string[]; again: number }>({ job: 'cancel', server: sample.url, series: sampleSeries });
    const cancelledOnServer = sample.stats.requestsCancelled - before.requestsCancelled;
    const sent = sample.stats.framesSent - before.framesSent;
    assert.ok(got.cancelled.filter((o) => o === 'LOAD_CANCELLED').length >= 30, `cancelled loads reject with LOAD_CANCELLED: ${got.cancelled.join(' ')}`);
    assert.ok(got.decached.filter((o) => o === 'LOAD_CANCELLED').length >= 30, `decached loads reject with LOAD_CANCELLED: ${got.decached.join(' ')}`);
    assert.ok(cancelledOnServer >= 60, `the server cancelled ${cancelledOnServer} of the 80 requests`);
    assert.ok(sent <= 80 - cancelledOnServer + 1, `${sent} frames sent, no more than were not cancelled and the one asked again`);
    assert.equal(got.again, 512 * 512, 'an image cancelled before loads when asked again');
  });
});

/** A corpus file with pixels and its own instance UID (one without is served under no name an imageId could give). */
function isServedImage(entry: ManifestFile): entry is ManifestFile & { sop_instance_uid: string } {
  return Boolean(entry.frames?.[0]?.sha256 && entry.sop_instance_uid);
}

/**
 * The sha256 of a frame's reference decode as Cornerstone holds it: stored values with the
 * modality LUT applied, in array type `type`; undefined where the corpus has no reference in the
 * colour space Cornerstone gives (native YBR, which it converts to RGB) or no reference file.
 */
function cornerstoneReference(entry: ManifestFile, frameNumber: number, type: string): { sha256: string; min: number; max: number } | undefined {
  const frame = (entry.frames as Array<{ reference_file?: string }>)[frameNumber - 1];
  const space = (entry as unknown as { reference?: { colour_space?: string } }).reference?.colour_space;
  if (!frame?.reference_file || !space || space.startsWith('YBR') || space === 'PALETTE COLOR') return undefined;
  const bytes = readFileSync(join(corpusDir, frame.reference_file));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const signed = entry.pixel_representation === 1;
  const stored = entry.bits_allocated === 1 ? Uint8Array.from({ length: entry.rows! * entry.columns! }, (_, i) => (bytes[i >> 3]! >> (i & 7)) & 1)
    : entry.bits_allocated === 32 ? (signed ? new Int32Array(buffer) : new Uint32Array(buffer))
    : entry.bits_allocated === 16 ? (signed ? new Int16Array(buffer) : new Uint16Array(buffer))
      : signed && entry.bits_allocated === 8 ? new Int8Array(buffer) : new Uint8Array(buffer);
  const colour = (entry.samples_per_pixel ?? 1) > 1;
  const slope = colour ? 1 : firstValue(entry.rescale_slope) ?? 1;
  const intercept = colour ? 0 : firstValue(entry.rescale_intercept) ?? 0;
  const Type = ({ Uint8Array, Uint8ClampedArray, Int8Array, Uint16Array, Int16Array, Uint32Array, Int32Array, Float32Array } as Record<string, new (n: number) => { [i: number]: number; buffer: ArrayBufferLike }>)[type];
  if (!Type) return undefined;
  const values = new Type(stored.length);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < stored.length; i++) {
    const v = stored[i]! * slope + intercept;
    values[i] = v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { sha256: sha256(new Uint8Array(values.buffer)), min, max };
}
