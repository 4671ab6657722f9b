// Streaming benchmark: how fast dicomstream delivers a whole 200-slice CT series (512x512, 16 bits)
// over a real WebSocket on 127.0.0.1, next to the raw limit of a bare `ws` server sending the same
// bytes from memory. Run from the project root: `npm run bench:stream [-- --series DIR] [-- --clients N]`.
// Results go to stdout and bench/out/stream-results.md; bench/README.md explains the numbers.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { connect, type DicomStreamClient, type FrameAddress, type ImageAttributes } from '../web-client/index.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(PROJECT, 'bench', 'out');
const MAKE_SERIES = resolve(PROJECT, '..', 'shared', 'corpus', 'make-series.py');
const PYTHON = '/usr/bin/python3';
const MEASURED_RUNS = 5;
const MIB = 1024 * 1024;

/** A failure the user can fix (missing tools, bad arguments): printed without a stack trace. */
class BenchError extends Error {}

interface Options { seriesDir: string; generate: boolean; clients: number }

/** One frame as a client received it; `uid` names the instance it must match. */
interface Received { uid: string; bytes: Uint8Array }

/** One client's whole-series fetch: when it asked, when each frame arrived, what arrived. */
interface Trace { askedAt: number; arrivals: number[]; frames: Received[] }

/** What every frame must be: byte length, and sha256 of the stored pixels when the manifest has it. */
interface Expected { addresses: FrameAddress[]; frameBytes: Map<string, number>; sha256: Map<string, string> }

interface Check { frames: number; wrongSize: number; wrongHash: number; missing: number }

/** One round: every client fetched the whole series once, at the same time. */
interface Round {
  wallMs: number; bytes: number; frames: number; ttffMs: number; gapP95Ms: number;
  cpuUserMs: number; cpuSystemMs: number; peakRssBytes: number; check: Check;
}

/** Something that can fetch the whole series for one client, timed. */
type Fetcher = () => Promise<Trace>;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({ args: argv, options: { series: { type: 'string' }, clients: { type: 'string', default: '1' } } });
  const clients = Number(values.clients);
  if (!Number.isInteger(clients) || clients < 1) throw new BenchError(`--clients wants a positive integer, not ${values.clients}`);
  const seriesDir = values.series ? resolve(values.series) : join(OUT, 'series');
  return { seriesDir, generate: values.series === undefined, clients };
}

/** Makes the series with the corpus generator unless a complete one is there already. */
function ensureSeries(seriesDir: string): void {
  // The manifest is written last, so a folder without it is an interrupted generation: redo it.
  if (existsSync(join(seriesDir, 'uncompressed')) && existsSync(join(seriesDir, 'series-manifest.json'))) return;
  if (!existsSync(MAKE_SERIES)) throw new BenchError(`the series generator is missing: ${MAKE_SERIES}`);
  const probe = spawnSync(PYTHON, ['-c', 'import pydicom, numpy'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new BenchError(`${PYTHON} with pydicom and numpy is needed to generate the series: apt-get install -y python3-pydicom python3-numpy dcmtk libgdcm-tools`);
  }
  console.log(`generating the CT series into ${relative(PROJECT, seriesDir) || seriesDir} (about a minute)...`);
  mkdirSync(seriesDir, { recursive: true });
  const run = spawnSync(PYTHON, [MAKE_SERIES, seriesDir, '--verify', '0'], { stdio: 'inherit' });
  if (run.status !== 0) throw new BenchError(`make-series.py failed (exit ${run.status}); it also needs dcmtk and libgdcm-tools`);
}

interface SeriesManifestFile { series_instance_uid?: string; slice_pixel_sha256?: string[] }

/** The generator's manifest, if the folder has one (a `--series` folder may not). */
function readSeriesManifest(seriesDir: string): SeriesManifestFile {
  const path = join(seriesDir, 'series-manifest.json');
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as SeriesManifestFile : {};
}

/** The series to fetch: the manifest's, else the one with the most instances. */
async function pickSeries(client: DicomStreamClient, wanted: string | undefined): Promise<string> {
  const all = (await client.listStudies()).flatMap((s) => s.series);
  const chosen = all.find((s) => s.seriesInstanceUid === wanted) ?? all.sort((a, b) => b.numberOfInstances - a.numberOfInstances)[0];
  if (!chosen) throw new BenchError('the server found no series in the folder');
  return chosen.seriesInstanceUid;
}

function frameLength(i: ImageAttributes): number {
  return i.rows * i.columns * (i.samplesPerPixel || 1) * i.bitsAllocated / 8;
}

/** Frame 1 of every instance, with the size and hash each must have. */
function expectations(instances: ImageAttributes[], sliceSha: string[] | undefined): Expected {
  const frameBytes = new Map<string, number>();
  const sha256 = new Map<string, string>();
  for (const i of instances) {
    frameBytes.set(i.sopInstanceUid, frameLength(i));
    // make-series.py numbers instance k+1 from slice k, and lists slice hashes by k.
    const hash = sliceSha?.[i.instanceNumber - 1];
    if (hash) sha256.set(i.sopInstanceUid, hash);
  }
  return { addresses: instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })), frameBytes, sha256 };
}

function dicomstreamFetcher(client: DicomStreamClient, addresses: FrameAddress[]): Fetcher {
  return async () => {
    const arrivals: number[] = [];
    const frames: Received[] = [];
    const askedAt = performance.now();
    const stream = client.requestFrames(addresses);
    for await (const frame of stream) {
      arrivals.push(performance.now());
      frames.push({ uid: frame.sopInstanceUid, bytes: frame.bytes });
    }
    const summary = await stream.done;
    if (summary.errors.length > 0 || summary.cancelled) {
      throw new Error(`request ended badly: ${summary.errors.length} errors${summary.cancelled ? ', cancelled' : ''}; first: ${summary.errors[0]?.message}`);
    }
    return { askedAt, arrivals, frames };
  };
}

/** The baseline server: any message asks for every frame, one binary message each, no flow control. */
async function startBareServer(payload: Buffer[]): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', () => { for (const p of payload) ws.send(p, { binary: true }); }));
  await new Promise<void>((ok, fail) => { http.once('error', fail); http.listen(0, '127.0.0.1', ok); });
  const { port } = http.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((ok) => wss.close(() => ok()));
      await new Promise<void>((ok) => http.close(() => ok()));
    },
  };
}

async function openBareSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  return ws;
}

/** The baseline client: frames arrive in the order the server holds them, which is `uids`. */
function bareFetcher(ws: WebSocket, uids: string[]): Fetcher {
  return () => new Promise<Trace>((done, fail) => {
    const arrivals: number[] = [];
    const frames: Received[] = [];
    const onMessage = (data: RawData): void => {
      arrivals.push(performance.now());
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      frames.push({ uid: uids[frames.length] ?? '', bytes });
      if (frames.length === uids.length) finish();
    };
    const onClose = (): void => { ws.off('message', onMessage); fail(new Error('baseline socket closed')); };
    const finish = (): void => { ws.off('message', onMessage); ws.off('close', onClose); done({ askedAt, arrivals, frames }); };
    ws.on('message', onMessage);
    ws.once('close', onClose);
    const askedAt = performance.now();
    ws.send('all');
  });
}

/**
 * Runs every client's fetch at once; CPU and RSS are the whole process's (server and clients).
 * `keep` sees the received frames before they are dropped (rounds keep no frames, so RSS stays honest).
 */
async function measureRound(fetchers: Fetcher[], expected: Expected, keep?: (traces: Trace[]) => void): Promise<Round> {
  let peakRss = process.memoryUsage.rss();
  // Each RSS reading parses /proc: sampled every 5 ms it cost ~3 % of the run, every 50 ms it is noise.
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()); }, 50);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let traces: Trace[];
  try {
    traces = await Promise.all(fetchers.map((f) => f()));
  } finally {
    clearInterval(sampler);
  }
  const used = process.cpuUsage(cpu);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  const end = Math.max(...traces.map((t) => t.arrivals.at(-1) ?? start));
  // Hashing happens after the clock and CPU counters stop, so it does not slow what is measured.
  const check = traces.map((t) => checkTrace(t, expected)).reduce(addChecks);
  keep?.(traces);
  const frames = traces.reduce((n, t) => n + t.frames.length, 0);
  return {
    wallMs: end - start,
    bytes: traces.reduce((n, t) => n + t.frames.reduce((m, f) => m + f.bytes.length, 0), 0),
    frames,
    ttffMs: median(traces.map((t) => (t.arrivals[0] ?? Number.NaN) - t.askedAt)),
    gapP95Ms: percentile(traces.flatMap((t) => t.arrivals.slice(1).map((a, i) => a - (t.arrivals[i] ?? a))), 0.95),
    cpuUserMs: used.user / 1000 / frames,
    cpuSystemMs: used.system / 1000 / frames,
    peakRssBytes: peakRss,
    check,
  };
}

function checkTrace(trace: Trace, expected: Expected): Check {
  const check: Check = { frames: trace.frames.length, wrongSize: 0, wrongHash: 0, missing: 0 };
  const seen = new Set<string>();
  for (const { uid, bytes } of trace.frames) {
    seen.add(uid);
    if (bytes.length !== expected.frameBytes.get(uid)) check.wrongSize++;
    const hash = expected.sha256.get(uid);
    if (hash !== undefined && createHash('sha256').update(bytes).digest('hex') !== hash) check.wrongHash++;
  }
  check.missing = expected.addresses.filter((a) => !seen.has(a.sopInstanceUid)).length;
  return check;
}

function addChecks(a: Check, b: Check): Check {
  return { frames: a.frames + b.frames, wrongSize: a.wrongSize + b.wrongSize, wrongHash: a.wrongHash + b.wrongHash, missing: a.missing + b.missing };
}

function isClean(c: Check): boolean {
  return c.wrongSize === 0 && c.wrongHash === 0 && c.missing === 0;
}

function median(xs: number[]): number {
  return percentile(xs, 0.5);
}

/** Linear interpolation between closest ranks; NaN for no data. */
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (s[lo] ?? 0) + ((s[hi] ?? 0) - (s[lo] ?? 0)) * (at - lo);
}

interface Summary {
  mibPerS: number; framesPerS: number; ttffMs: number; gapP95Ms: number;
  cpuUserMs: number; cpuSystemMs: number; cpuTotalMs: number; peakRssMib: number;
  runsMibPerS: number[]; check: Check;
}

/** Medians over the measured rounds (RSS: the highest peak, since memory is a ceiling). */
function summarise(rounds: Round[]): Summary {
  const rate = (r: Round): number => r.bytes / MIB / (r.wallMs / 1000);
  return {
    mibPerS: median(rounds.map(rate)),
    framesPerS: median(rounds.map((r) => r.frames / (r.wallMs / 1000))),
    ttffMs: median(rounds.map((r) => r.ttffMs)),
    gapP95Ms: median(rounds.map((r) => r.gapP95Ms)),
    cpuUserMs: median(rounds.map((r) => r.cpuUserMs)),
    cpuSystemMs: median(rounds.map((r) => r.cpuSystemMs)),
    cpuTotalMs: median(rounds.map((r) => r.cpuUserMs + r.cpuSystemMs)),
    peakRssMib: Math.max(...rounds.map((r) => r.peakRssBytes)) / MIB,
    runsMibPerS: rounds.map(rate),
    check: rounds.map((r) => r.check).reduce(addChecks),
  };
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

function table(ds: Summary, bare: Summary, clients: number): string {
  const aggregate = clients > 1 ? ` (all ${clients} clients)` : '';
  const rows: Array<[string, number, number, number]> = [
    [`throughput, MiB/s of frame bytes${aggregate}`, ds.mibPerS, bare.mibPerS, 1],
    [`frames/s${aggregate}`, ds.framesPerS, bare.framesPerS, 0],
    ['time to first frame, ms (median client)', ds.ttffMs, bare.ttffMs, 2],
    ['gap between frames, p95, ms', ds.gapP95Ms, bare.gapP95Ms, 2],
    ['CPU per frame, user, ms', ds.cpuUserMs, bare.cpuUserMs, 2],
    ['CPU per frame, system, ms', ds.cpuSystemMs, bare.cpuSystemMs, 2],
    ['CPU per frame, total, ms (server + client: one process)', ds.cpuTotalMs, bare.cpuTotalMs, 2],
    ['peak RSS, MiB (whole process)', ds.peakRssMib, bare.peakRssMib, 0],
  ];
  const lines = rows.map(([name, a, b, d]) => `| ${name} | ${fmt(a, d)} | ${fmt(b, d)} | ${fmt(a / b, 2)} |`);
  return ['| metric | dicomstream | bare ws | dicomstream / bare ws |', '|---|---:|---:|---:|', ...lines].join('\n');
}

function nproc(): string {
  try {
    return execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    return String(availableParallelism());
  }
}

function checkLine(name: string, c: Check, hashed: boolean): string {
  const hashes = hashed ? `${c.wrongHash} sha256 mismatches` : 'sha256 not checked (no per-slice hashes in series-manifest.json)';
  return `${name}: ${c.frames} frames checked, ${c.wrongSize} wrong sizes, ${hashes}, ${c.missing} missing`;
}

function report(o: Options, frames: number, frameBytes: number, hashed: boolean, ds: Summary, bare: Summary): string {
  const runs = (s: Summary): string => s.runsMibPerS.map((x) => fmt(x)).join(', ');
  return [
    `# dicomstream streaming benchmark`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- Node ${process.version}, nproc ${nproc()}, ${process.platform}/${process.arch}`,
    `- series: ${relative(PROJECT, o.seriesDir) || o.seriesDir}/uncompressed, ${frames} frames of ${frameBytes} bytes (${fmt(frames * frameBytes / MIB)} MiB)`,
    `- clients: ${o.clients}, each fetching the whole series; 1 warm-up round, then median of ${MEASURED_RUNS} rounds`,
    `- server, clients and baseline all run in one Node process: CPU and RSS are the process's`,
    '',
    table(ds, bare, o.clients),
    '',
    `Rounds, MiB/s: dicomstream ${runs(ds)}; bare ws ${runs(bare)}.`,
    '',
    `- ${checkLine('dicomstream', ds.check, hashed)}`,
    `- ${checkLine('bare ws', bare.check, hashed)}`,
    '',
  ].join('\n');
}

/** Collects close actions so that `finally` can undo whatever was started, in reverse. */
class Closer {
  private readonly actions: Array<() => Promise<void> | void> = [];
  add(action: () => Promise<void> | void): void { this.actions.push(action); }
  async closeAll(): Promise<void> {
    for (const action of this.actions.reverse()) {
      try { await action(); } catch (e) { console.error('while closing:', e); }
    }
  }
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.generate) ensureSeries(options.seriesDir);
  const root = join(options.seriesDir, 'uncompressed');
  if (!existsSync(root)) throw new BenchError(`no uncompressed/ folder in ${options.seriesDir}`);
  const manifestFile = readSeriesManifest(options.seriesDir);
  const closer = new Closer();
  try {
    const server: RunningServer = await startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('warn') });
    closer.add(() => server.close());
    const clients = await Promise.all(Array.from({ length: options.clients }, () => connect(server.url, { WebSocket, clientName: 'bench' })));
    for (const c of clients) closer.add(() => c.close());
    // Every client browses as a viewer would; the series is the same for all.
    const seriesUid = await pickSeries(clients[0]!, manifestFile.series_instance_uid);
    const manifests = await Promise.all(clients.map(async (c) => { await c.listStudies(); return c.openSeries(seriesUid); }));
    const instances = manifests[0]!.instances;
    if (instances.length === 0) throw new BenchError(`series ${seriesUid} has no instances`);
    const expected = expectations(instances, manifestFile.slice_pixel_sha256);
    const hashed = expected.sha256.size === instances.length;
    const frameBytes = frameLength(instances[0]!);
    console.log(`series ${seriesUid}: ${instances.length} instances, ${frameBytes} bytes a frame; ${options.clients} client(s)`);
    if (!hashed) console.log('series-manifest.json has no per-slice sha256 for these instances: checking frame sizes only');

    const dsFetchers = clients.map((c) => dicomstreamFetcher(c, expected.addresses));
    // The baseline sends exactly the bytes dicomstream delivered in the warm-up (checked like every
    // round), copied out of the client's receive buffers, in manifest order.
    const payload = new Map<string, Buffer>();
    const dsWarmup = await measureRound(dsFetchers, expected, ([t]) => { for (const f of t?.frames ?? []) payload.set(f.uid, Buffer.from(f.bytes)); });
    const uids = expected.addresses.map((a) => a.sopInstanceUid);
    const bare = await startBareServer(uids.map((u) => payload.get(u) ?? Buffer.alloc(0)));
    closer.add(() => bare.close());
    const sockets = await Promise.all(clients.map(() => openBareSocket(bare.url)));
    for (const ws of sockets) closer.add(() => ws.terminate());
    const bareFetchers = sockets.map((ws) => bareFetcher(ws, uids));
    const bareWarmup = await measureRound(bareFetchers, expected);

    // Alternate the two so that drift (page cache, thermal, GC) hits both alike.
    const dsRounds: Round[] = [];
    const bareRounds: Round[] = [];
    for (let i = 0; i < MEASURED_RUNS; i++) {
      dsRounds.push(await measureRound(dsFetchers, expected));
      bareRounds.push(await measureRound(bareFetchers, expected));
      console.log(`round ${i + 1}/${MEASURED_RUNS}: dicomstream ${fmt(dsRounds.at(-1)!.wallMs, 0)} ms, bare ws ${fmt(bareRounds.at(-1)!.wallMs, 0)} ms`);
    }
    const ds = summarise(dsRounds);
    const base = summarise(bareRounds);
    // Warm-up frames are not timed but are checked all the same.
    ds.check = addChecks(ds.check, dsWarmup.check);
    base.check = addChecks(base.check, bareWarmup.check);
    const text = report(options, instances.length, frameBytes, hashed, ds, base);
    console.log('\n' + text);
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'stream-results.md'), text);
    console.log(`written to ${relative(process.cwd(), join(OUT, 'stream-results.md'))}`);
    const clean = isClean(ds.check) && isClean(base.check);
    if (!clean) console.error('FAILED: some frames were missing or did not match');
    return clean ? 0 : 1;
  } finally {
    await closer.closeAll();
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    console.error(e instanceof BenchError ? `bench:stream: ${e.message}` : e);
    process.exitCode = 1;
  },
);
