// Browser benchmark: the 200-slice CT (uncompressed and JPEG-LS) loaded into a Chromium page
// several ways, alternating, each run in a fresh browser:
//   cornerstone+dicomstream   Cornerstone3D with the dicomstream/cornerstone loader
//   cornerstone+wadors:orthanc  Cornerstone3D with its own wadors: loader from Orthanc's DICOMweb
//   cornerstone+wadors:dicomstream  the same loader from dicomstream's DICOMweb
//   dicomstream viewer        dicomstream's own client: the series loaded and decoded as the demo does
//   cornerstone floor         Cornerstone3D with images made in memory: what it takes by itself
//   bare websocket, dicomstream client (uncompressed): the bytes received, no more
// For each: time to the first image (the stack's first, shown in a StackViewport for Cornerstone,
// decoded for the viewer), to the whole series loaded, and the page's JS heap at the end; medians
// of the runs, and the ratios the targets are stated in. Every run's pixels are hashed and must be
// the same across the ways that give Cornerstone images.
// Run from the project root: `npm run bench:browser [-- --runs 5] [-- --series DIR]`; `--only A,B`
// runs the ways whose name holds A or B, `--profile` prints where each way's page spent its time.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build as viteBuild } from 'vite';
import { packedApp, serveFolder } from '../test/helpers/packed-app.js';
import { withBrowser } from '../test/helpers/browser.js';
import WebSocket from 'ws';
import { connect } from '../web-client/index.js';
import { BARE_SERVER, BenchError, CLI, Closer, ensureBuild, ensureSeries, expectations, fmt, frameRanges, median, OUT, startServerProcess } from './common.js';
import { findOrthanc, inNamespaceForOrthanc, startOrthanc } from './orthanc.js';

const PAGE = `import * as cornerstone from '@cornerstonejs/core';
import { init as initDicomImageLoader, wadors } from '@cornerstonejs/dicom-image-loader';
import { cornerstoneImage, parseImageId, registerDicomStream } from 'dicomstream/cornerstone';
import { connect, decodeFrame } from 'dicomstream/client';
const params = new URLSearchParams(location.search);
const hex = async (a) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', a))].map((b) => b.toString(16).padStart(2, '0')).join('');
/** One hash over every image's pixels, in stack order. */
async function digest(arrays) {
  const parts = [];
  for (const a of arrays) parts.push(await hex(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)));
  return hex(new TextEncoder().encode(parts.join('')));
}
async function cornerstoneStack(imageIds, started) {
  const element = document.createElement('div');
  element.style.width = '512px';
  element.style.height = '512px';
  document.body.appendChild(element);
  const engine = new cornerstone.RenderingEngine('bench');
  engine.enableElement({ viewportId: 'stack', type: cornerstone.Enums.ViewportType.STACK, element });
  const viewport = engine.getViewport('stack');
  const shown = new Promise((ok) => element.addEventListener(cornerstone.Enums.Events.IMAGE_RENDERED, ok, { once: true }));
  const first = viewport.setStack(imageIds, 0).then(() => shown).then(() => performance.now() - started);
  // What a viewer's stack prefetch does: every other image, at prefetch priority.
  const all = Promise.all(imageIds.map((id, i) => i === 0 ? first : cornerstone.imageLoader.loadAndCacheImage(id, { requestType: 'prefetch' })));
  const firstMs = await first;
  await all;
  const allMs = performance.now() - started;
  return { firstMs, allMs, images: imageIds.length, sha256: await digest(imageIds.map((id) => cornerstone.cache.getImage(id).getPixelData())) };
}
const ways = {
  async 'cornerstone+dicomstream'() {
    await cornerstone.init();
    const started = performance.now();
    const ds = await registerDicomStream(cornerstone, { url: params.get('ws') });
    return cornerstoneStack(await ds.imageIdsForSeries(params.get('series')), started);
  },
  async 'cornerstone+wadors'() {
    await cornerstone.init();
    initDicomImageLoader();
    const started = performance.now();
    // As OHIF does: the series' metadata in one request, then an imageId per frame.
    const base = params.get('web') + '/studies/' + params.get('study') + '/series/' + params.get('series');
    const metadata = await (await fetch(base + '/metadata', { headers: { Accept: 'application/dicom+json' } })).json();
    const number = (m, tag) => Number(m[tag]?.Value?.[0] ?? 0);
    metadata.sort((a, b) => number(a, '00200013') - number(b, '00200013'));
    const imageIds = metadata.map((m) => {
      const id = 'wadors:' + base + '/instances/' + m['00080018'].Value[0] + '/frames/1';
      wadors.metaDataManager.add(id, m);
      return id;
    });
    return cornerstoneStack(imageIds, started);
  },
  // What Cornerstone itself takes: the same imageIds and metadata (from dicomstream), but each image
  // made in memory at once by the loader (pixels of zeros): no network, no decoding. No loader can
  // show the first image or fill the cache faster than this.
  async 'cornerstone floor'() {
    await cornerstone.init();
    const ds = await registerDicomStream(cornerstone, { url: params.get('ws') });
    const imageIds = await ds.imageIdsForSeries(params.get('series'));
    cornerstone.imageLoader.registerImageLoader('dicomstream', (imageId) => ({
      promise: Promise.resolve().then(() => {
        const instance = ds.client.instance(parseImageId(imageId).sopInstanceUid);
        return cornerstoneImage(cornerstone, imageId, instance, { pixels: new Int16Array(instance.rows * instance.columns), min: 0, max: 0, scaled: true });
      }),
    }));
    return cornerstoneStack(imageIds, performance.now());
  },
  // The raw limit: a bare browser WebSocket receiving the same frames from bench/bare-ws-server.mjs.
  async 'bare websocket'() {
    const started = performance.now();
    const ws = new WebSocket(params.get('bare'));
    ws.binaryType = 'arraybuffer';
    await new Promise((ok, no) => { ws.onopen = ok; ws.onerror = no; });
    const frames = Number(params.get('frames'));
    let firstMs;
    let count = 0;
    await new Promise((ok) => {
      ws.onmessage = () => {
        if (count++ === 0) firstMs = performance.now() - started;
        if (count === frames) ok();
      };
      ws.send('go');
    });
    const allMs = performance.now() - started;
    ws.close();
    return { firstMs, allMs, images: count, sha256: null };
  },
  // dicomstream's client receiving the series (every frame's bytes), not decoding it.
  'dicomstream client': () => dicomstreamSeries((frame, at, arrived) => { if (at === 0) arrived(); }),
  // As the demo viewer does: every frame decoded in the client's workers.
  'dicomstream viewer': () => dicomstreamSeries((frame, at, arrived) => decodeFrame(frame.bytes, frame.instance, { bitOffset: frame.bitOffset }).then(() => { if (at === 0) arrived(); })),
};
/** The series through dicomstream's client, each frame handed to onFrame(frame, stack index, mark image 0 in). */
async function dicomstreamSeries(onFrame) {
  const started = performance.now();
  const client = await connect(params.get('ws'));
  const series = await client.openSeries(params.get('series'));
  const byUid = new Map(series.instances.map((instance, i) => [instance.sopInstanceUid, i]));
  let firstMs;
  const arrived = () => { firstMs = performance.now() - started; };
  const pending = [];
  for await (const frame of client.requestFrames(series.instances.map((i, position) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1, position })), { priority: 10 })) {
    pending.push(onFrame(frame, byUid.get(frame.sopInstanceUid), arrived));
  }
  await Promise.all(pending);
  const allMs = performance.now() - started;
  client.close();
  return { firstMs, allMs, images: pending.length, sha256: null };
}
ways[params.get('way')]().then((r) => { document.body.dataset.result = JSON.stringify(r); }, (e) => { document.body.dataset.error = String(e && e.stack || e); });
`;

interface Result { firstMs: number; allMs: number; images: number; sha256: string | null; heapMiB: number }
interface Way { name: string; query: Record<string, string>; results: Result[] }

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** The functions the main thread spent most time in (self time), a line each. */
function topFunctions(profile: Profile, count: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  profile.samples.forEach((id, k) => {
    const frame = byId.get(id)!.callFrame;
    const name = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').pop()}:${frame.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[k] ?? 0) / 1000);
  });
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, ms]) => `    ${fmt(ms, 0).padStart(6)} ms  ${name}`);
}

/**
 * The page at `url` in a fresh Chromium (the tests' launcher: its own profile, the same flags);
 * with `profile`, the page's main thread is profiled and its top functions printed.
 */
function inFreshBrowser(url: string, profile = false): Promise<Result> {
  return withBrowser(async (context) => {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    if (profile) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
      await cdp.send('Profiler.start');
    }
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.result !== undefined || document.body.dataset.error !== undefined, null, { timeout: 300_000 });
    if (profile) console.log(topFunctions(((await cdp.send('Profiler.stop')) as { profile: Profile }).profile, 25).join('\n'));
    const error = await page.evaluate(() => document.body.dataset.error);
    if (error) throw new BenchError(`the page failed: ${error}`);
    const result = JSON.parse((await page.evaluate(() => document.body.dataset.result))!) as Omit<Result, 'heapMiB'>;
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics') as { metrics: Array<{ name: string; value: number }> };
    const heap = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0;
    return { ...result, heapMiB: heap / 1024 / 1024 };
  });
}

/**
 * The page's origin for DICOMweb: files from `site`, and `/{port}/…` passed to 127.0.0.1:{port}/…
 * (streamed both ways, headers kept).
 */
function dicomwebProxy(site: string): Promise<{ server: Server; origin: string }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const server = createServer((req, res) => {
    const m = /^\/(\d+)(\/.*)$/.exec(req.url ?? '');
    const target = m ? { port: Number(m[1]), path: m[2]! } : { port: Number(new URL(site).port), path: req.url ?? '/' };
    const upstream = request({ agent, host: '127.0.0.1', port: target.port, method: req.method, path: target.path, headers: { ...req.headers, host: `127.0.0.1:${target.port}` } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    ok({ server, origin: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` });
  }));
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, series: { type: 'string' }, profile: { type: 'boolean', default: false }, only: { type: 'string' } } });
  const runs = Math.max(1, Number(values.runs));
  let orthanc = findOrthanc();
  const placed = orthanc ? await inNamespaceForOrthanc() : undefined;
  if (placed && 'rerunExit' in placed) return placed.rerunExit;
  if (placed) {
    console.log(placed.skipped);
    orthanc = undefined;
  } else if (!orthanc) console.log('Orthanc not installed (apt-get install orthanc orthanc-dicomweb): its rows are skipped');
  const seriesDir = values.series ?? join(OUT, 'series');
  if (!values.series) ensureSeries(seriesDir);
  const warning = ensureBuild();
  if (warning) console.log(warning);

  const closer = new Closer();
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-bench-browser-'));
  closer.add(() => rmSync(dir, { recursive: true, force: true }));
  try {
    console.log('building the benchmark page with Vite from the packed package...');
    const app = packedApp(dir, { 'main.js': PAGE }, ['@cornerstonejs/core', '@cornerstonejs/dicom-image-loader', '@cornerstonejs/metadata', 'events']);
    await viteBuild({ root: app, logLevel: 'silent', configFile: false, worker: { format: 'es' }, build: { outDir: join(app, 'dist'), emptyOutDir: true, minify: !values.profile } });
    const site = await serveFolder(join(app, 'dist'));
    closer.add(() => { site.server.close(); });
    // Orthanc sends no CORS headers: as in OHIF's own deployments, the page reaches DICOMweb through a
    // proxy on its own origin; dicomstream's DICOMweb goes through the same proxy, for the same cost.
    const proxy = await dicomwebProxy(site.origin);
    closer.add(() => { proxy.server.close(); });
    const lines: string[] = [];
    for (const syntax of ['uncompressed', 'jpegls']) {
      const root = join(seriesDir, syntax);
      if (!existsSync(root)) throw new BenchError(`no ${syntax}/ folder in ${seriesDir}`);
      const ds = startServerProcess('dicomstream', [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn']);
      const dsUrl = await ds.url;
      const port = new URL(dsUrl).port;
      const catalogue = await (await fetch(`http://127.0.0.1:${port}/dicomweb/studies`)).json() as Array<Record<string, { Value?: string[] }>>;
      const study = catalogue[0]!['0020000D']!.Value![0]!;
      const seriesList = await (await fetch(`http://127.0.0.1:${port}/dicomweb/studies/${study}/series`)).json() as Array<Record<string, { Value?: string[] }>>;
      const series = seriesList[0]!['0020000E']!.Value![0]!;
      const common = { ws: dsUrl, study, series };
      const ways: Way[] = [
        { name: 'cornerstone+dicomstream', query: { way: 'cornerstone+dicomstream', ...common }, results: [] },
        { name: 'cornerstone+wadors:dicomstream', query: { way: 'cornerstone+wadors', web: `${proxy.origin}/${port}/dicomweb`, ...common }, results: [] },
        { name: 'dicomstream viewer', query: { way: 'dicomstream viewer', ...common }, results: [] },
        { name: 'cornerstone floor', query: { way: 'cornerstone floor', ...common }, results: [] },
      ];
      const local = new Closer();
      local.add(() => ds.stop());
      try {
        if (syntax === 'uncompressed') {
          // The raw limit in the same page: the same frame bytes from a bare `ws` server, and
          // dicomstream's client receiving them (not decoding).
          const client = await connect(dsUrl, { WebSocket });
          const instances = (await client.openSeries(series)).instances;
          client.close();
          const expected = expectations(instances, undefined);
          const bare = startServerProcess('bare ws', [BARE_SERVER], JSON.stringify(frameRanges(root, expected.addresses.map((a) => a.sopInstanceUid), expected.frameBytes)));
          local.add(() => bare.stop());
          ways.push(
            { name: 'bare websocket', query: { way: 'bare websocket', bare: await bare.url, frames: String(instances.length) }, results: [] },
            { name: 'dicomstream client', query: { way: 'dicomstream client', ...common }, results: [] },
          );
        }
        if (orthanc) {
          // The series' files, not the saved index dicomstream keeps beside them.
          const files = (readdirSync(root, { recursive: true }) as string[]).filter((name) => !name.startsWith('.dicomstream')).map((name) => ({ path: join(root, name) })).filter((f) => statSync(f.path).isFile());
          const peer = await startOrthanc(orthanc, files, local);
          ways.splice(1, 0, { name: 'cornerstone+wadors:orthanc', query: { way: 'cornerstone+wadors', web: `${proxy.origin}/${peer.port}/dicom-web`, ...common }, results: [] });
        }
        if (values.only) ways.splice(0, ways.length, ...ways.filter((w) => values.only!.split(',').some((part) => w.name.includes(part))));
        if (ways.length === 0) continue;
        // One warm-up round (servers' caches, the page in the OS cache), then alternating runs.
        for (let run = 0; run <= runs; run++) {
          for (let k = 0; k < ways.length; k++) {
            const way = ways[(k + run) % ways.length]!;
            if (values.profile && run === 1) console.log(`${syntax} ${way.name}: the page's main thread, self time`);
            const result = await inFreshBrowser(`${proxy.origin}/?${new URLSearchParams(way.query)}`, values.profile && run === 1);
            if (result.images !== 200 && result.images <= 0) throw new BenchError(`${way.name}: ${result.images} images`);
            if (run > 0) way.results.push(result);
            console.log(`${syntax} ${run === 0 ? 'warm-up' : `run ${run}`} ${way.name}: first ${fmt(result.firstMs, 0)} ms, all ${fmt(result.allMs, 0)} ms, heap ${fmt(result.heapMiB)} MiB`);
          }
        }
      } finally {
        await local.closeAll();
      }
      if (ways.length === 0) continue;
      const hashes = new Set(ways.filter((w) => w.name !== 'cornerstone floor').flatMap((w) => w.results.map((r) => r.sha256)).filter((h) => h !== null));
      if (hashes.size > 1) throw new BenchError(`${syntax}: Cornerstone held different pixels depending on the loader (${hashes.size} hashes)`);
      const med = (w: Way, k: 'firstMs' | 'allMs' | 'heapMiB') => median(w.results.map((r) => r[k]));
      lines.push(`\n${syntax} (${ways[0]!.results[0]!.images} slices, medians of ${runs} fresh browsers; the same pixels in Cornerstone whichever loader):`);
      lines.push('| way | first image ms | whole series ms | page JS heap MiB |', '|---|---:|---:|---:|');
      for (const w of ways) lines.push(`| ${w.name} | ${fmt(med(w, 'firstMs'), 0)} | ${fmt(med(w, 'allMs'), 0)} | ${fmt(med(w, 'heapMiB'))} |`);
      const by = new Map(ways.map((w) => [w.name, w]));
      const ours = by.get('cornerstone+dicomstream');
      const viewer = by.get('dicomstream viewer');
      const orthancWay = by.get('cornerstone+wadors:orthanc');
      const floor = by.get('cornerstone floor');
      if (orthancWay && ours) {
        lines.push(`- whole series: Orthanc wadors: / dicomstream loader = ${fmt(med(orthancWay, 'allMs') / med(ours, 'allMs'), 2)}× (target ≥ 4)`);
        lines.push(`- first image: dicomstream loader / Orthanc wadors: = ${fmt(med(ours, 'firstMs') / med(orthancWay, 'firstMs'), 2)} (target ≤ 0.33)`);
        if (floor) lines.push(`- Cornerstone alone (images in memory) / Orthanc wadors: = ${fmt(med(floor, 'firstMs') / med(orthancWay, 'firstMs'), 2)} of the first image, ${fmt(med(floor, 'allMs') / med(orthancWay, 'allMs'), 2)} of the whole series: no loader does better`);
      }
      if (viewer && ours) lines.push(`- whole series: dicomstream loader / dicomstream viewer = ${fmt(med(ours, 'allMs') / med(viewer, 'allMs'), 2)} (target ≤ 1.25)`);
      const bareWay = by.get('bare websocket');
      const receiving = by.get('dicomstream client');
      if (bareWay && receiving) lines.push(`- received: bare WebSocket / dicomstream client = ${fmt(med(bareWay, 'allMs') / med(receiving, 'allMs'), 2)}× (target ≥ 0.8)`);
      if (bareWay && viewer) lines.push(`- whole series: dicomstream viewer / bare WebSocket = ${fmt(med(viewer, 'allMs') / med(bareWay, 'allMs'), 2)} (target ≤ 1.3)`);
    }
    console.log(lines.join('\n'));
    return 0;
  } finally {
    await closer.closeAll();
  }
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e instanceof BenchError ? `bench:browser: ${e.message}` : e);
  process.exit(1);
});
