// Decode benchmark: frames/s and MB/s of the client's decoders on 512x512 16-bit CT frames (the
// series built by ../shared/corpus/make-series.py, in each of its transfer syntaxes), in Node
// (in-process) and in Chromium's decode workers, with the uncompressed copy as the baseline.
// Run from the project root: `npm run bench:decode [-- --frames N]`. Results: stdout and
// bench/out/decode-results.md.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { FrameReader } from '../server/files/frame-reader.js';
import { createLogger, indexFile, startServer, type IndexedFile } from '../server/index.js';
import { decodeFrame, renderRgba, transferSyntax } from '../web-client/index.js';
import { withBrowser } from '../test/helpers/browser.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERIES = join(PROJECT, 'bench', 'out', 'series');
const VARIANTS = ['uncompressed', 'rle', 'jpeg-lossless', 'jpegls', 'j2k'] as const;
const ROUNDS = 3;
const MB = 1e6;

interface Result { variant: string; syntax: string; frames: number; decodedBytes: number; encodedBytes: number; nodeMs: number; browserMs?: number }

async function loadFrames(dir: string, count: number): Promise<Array<{ file: IndexedFile; bytes: Uint8Array }>> {
  const names = readdirSync(dir).filter((n) => n.endsWith('.dcm')).sort().slice(0, count);
  const reader = new FrameReader();
  try {
    return await Promise.all(names.map(async (n) => {
      const file = await indexFile(join(dir, n));
      const frame = file.frames[0]!;
      const bytes = new Uint8Array(frame.length);
      await reader.read(file, frame, 0, frame.length, bytes, 0);
      return { file, bytes };
    }));
  } finally {
    await reader.close();
  }
}

/** Median wall time of decoding every frame once, one after another, in this process. */
async function timeNode(frames: Array<{ file: IndexedFile; bytes: Uint8Array }>): Promise<number> {
  for (const f of frames.slice(0, 3)) await decodeFrame(f.bytes, f.file.image); // load the codec, warm up
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (const f of frames) await decodeFrame(f.bytes, f.file.image);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

/** Median wall time of decoding the series' frames in the page's worker pool (all at once). */
async function timeBrowser(page: Page, httpUrl: string, count: number): Promise<number> {
  await page.goto(`${httpUrl}assets/decode-worker.js`); // any same-origin page that runs nothing
  return page.evaluate(async ({ count, rounds }) => {
    // The page's own copy of the client bundle, served by the server (a variable keeps tsc from resolving it here).
    const bundle = '/assets/dicomstream-client.js';
    const api = await import(bundle) as typeof import('../web-client/browser.js');
    const client = await api.connect(`ws://${location.host}/`);
    const [study] = await client.listStudies();
    const series = await client.openSeries(study!.series[0]!.seriesInstanceUid);
    const instances = series.instances.slice(0, count);
    const frames: Array<{ bytes: Uint8Array; instance: (typeof instances)[number] }> = [];
    for await (const f of client.requestFrames(instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })))) {
      frames.push({ bytes: f.bytes, instance: instances.find((i) => i.sopInstanceUid === f.sopInstanceUid)! });
    }
    api.prepareDecoders();
    await Promise.all(frames.slice(0, 4).map((f) => api.decodeFrame(f.bytes, f.instance)));
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      await Promise.all(frames.map((f) => api.decodeFrame(f.bytes, f.instance)));
      times.push(performance.now() - t0);
    }
    client.close();
    return times.sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
  }, { count, rounds: ROUNDS });
}

/**
 * A window drag redraws the frame with a new window each step: ms per 512×512 16-bit redraw, with
 * a copy of the same RGBA buffer (the least any redraw costs) as the baseline.
 */
function timeRedraw(image: IndexedFile['image'], pixels: Uint16Array): { redrawMs: number; copyMs: number } {
  const out = new Uint8ClampedArray(image.rows * image.columns * 4);
  const copy = new Uint8ClampedArray(out.length);
  const steps = 50;
  renderRgba(pixels, image, { window: { center: 40, width: 400 } }, out);
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) renderRgba(pixels, image, { window: { center: 40 + i, width: 400 + i } }, out);
  const redrawMs = (performance.now() - t0) / steps;
  t0 = performance.now();
  for (let i = 0; i < steps; i++) copy.set(out);
  return { redrawMs, copyMs: (performance.now() - t0) / steps };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { frames: { type: 'string', default: '60' }, 'no-browser': { type: 'boolean' } } });
  const count = Number(values.frames);
  if (!existsSync(join(SERIES, 'uncompressed'))) throw new Error(`no series in ${SERIES}: run \`npm run bench:stream\` once (it builds it)`);
  const results: Result[] = [];
  const run = async (page?: Page) => {
    for (const variant of VARIANTS) {
      const dir = join(SERIES, variant);
      if (!existsSync(dir)) continue;
      const frames = await loadFrames(dir, count);
      const image = frames[0]!.file.image;
      const syntax = transferSyntax(image.transferSyntaxUid)?.name ?? image.transferSyntaxUid;
      let nodeMs: number;
      try {
        nodeMs = await timeNode(frames);
      } catch (e) {
        console.log(`${variant}: skipped (${(e as Error).message})`);
        continue;
      }
      const result: Result = {
        variant, syntax, frames: frames.length, nodeMs,
        decodedBytes: frames.length * image.rows * image.columns * (image.bitsAllocated / 8),
        encodedBytes: frames.reduce((n, f) => n + f.bytes.length, 0),
      };
      if (page) {
        const server = await startServer({ root: dir, host: '127.0.0.1', port: 0, log: createLogger('warn') });
        try {
          result.browserMs = await timeBrowser(page, server.url.replace('ws://', 'http://'), count);
        } finally {
          await server.close();
        }
      }
      results.push(result);
      console.log(`${variant}: node ${(result.frames / (result.nodeMs / 1000)).toFixed(0)} frames/s` +
        (result.browserMs ? `, browser ${(result.frames / (result.browserMs / 1000)).toFixed(0)} frames/s` : ''));
    }
  };
  if (values['no-browser']) await run();
  else await withBrowser(async (context) => run(await context.newPage()));

  const base = results.find((r) => r.variant === 'uncompressed');
  const rate = (r: Result, ms?: number) => (ms ? r.frames / (ms / 1000) : NaN);
  const lines = [
    '| transfer syntax | compression | Node frames/s | Node MB/s | Node vs uncompressed | browser workers frames/s | browser MB/s | browser vs uncompressed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map((r) => {
      const nf = rate(r, r.nodeMs);
      const bf = rate(r, r.browserMs);
      return `| ${r.syntax} | ${(r.decodedBytes / r.encodedBytes).toFixed(2)}:1 | ${nf.toFixed(0)} | ${(r.decodedBytes / MB / (r.nodeMs / 1000)).toFixed(0)} | ` +
        `${base ? (nf / rate(base, base.nodeMs)).toFixed(3) : ''} | ${Number.isNaN(bf) ? '–' : bf.toFixed(0)} | ` +
        `${r.browserMs ? (r.decodedBytes / MB / (r.browserMs / 1000)).toFixed(0) : '–'} | ${base?.browserMs && r.browserMs ? (bf / rate(base, base.browserMs)).toFixed(3) : '–'} |`;
    }),
  ];
  const first = results.length ? await loadFrames(join(SERIES, 'uncompressed'), 1) : [];
  if (first[0]) {
    const { file, bytes } = first[0];
    const { pixels } = await decodeFrame(bytes, file.image);
    const { redrawMs, copyMs } = timeRedraw(file.image, pixels as Uint16Array);
    lines.push('', `Window drag (Node, renderRgba into the same buffer): ${redrawMs.toFixed(2)} ms per 512×512 16-bit redraw; ` +
      `copying the RGBA buffer takes ${copyMs.toFixed(2)} ms (ratio ${(redrawMs / copyMs).toFixed(1)}).`);
  }
  const table = lines.join('\n');
  console.log(`\n${table}\n`);
  mkdirSync(join(PROJECT, 'bench', 'out'), { recursive: true });
  writeFileSync(join(PROJECT, 'bench', 'out', 'decode-results.md'),
    `# Decode benchmark\n\n${new Date().toISOString()}, Node ${process.version}, ${availableParallelism()} cores, ${count} frames of 512×512 16-bit CT per syntax, median of ${ROUNDS} rounds.\n\n${table}\n`);
}

main().catch((e: unknown) => {
  console.error(`bench:decode: ${(e as Error).message}`);
  process.exitCode = 1;
});
