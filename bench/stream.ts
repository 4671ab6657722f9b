// Streaming benchmark: how fast dicomstream delivers a whole 200-slice CT series (512x512, 16 bits)
// over a real WebSocket on 127.0.0.1, next to the raw limit of a bare `ws` server sending the same
// bytes from memory. Run from the project root: `npm run bench:stream [-- --series DIR] [-- --clients N]`.
// Each server runs as its own process (dicomstream as `node dist/server/cli.js serve`, the baseline as
// bench/bare-ws-server.mjs); the clients run here, so server and client CPU are measured apart.
// Results go to stdout and bench/out/stream-results.md; bench/README.md explains the numbers.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import dicomParser from 'dicom-parser';
import { WebSocket, type RawData } from 'ws';
import { connect, type DicomStreamClient, type FrameAddress, type ImageAttributes } from '../web-client/index.js';

const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(PROJECT, 'bench', 'out');
const CLI = join(PROJECT, 'dist', 'server', 'cli.js');
const BARE_SERVER = join(PROJECT, 'bench', 'bare-ws-server.mjs');
/** How long a server may take to print its URL (dicomstream indexes the folder first). */
const START_TIMEOUT_MS = 120_000;
/** After SIGTERM, how long a server gets before SIGKILL. */
const KILL_GRACE_MS = 2000;
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

/**
 * One round: every client fetched the whole series once, at the same time. CPU figures are per frame;
 * `serverCpuRoundMs` is the server's whole CPU time for the round (a multiple of the clock tick).
 */
interface Round {
  wallMs: number; bytes: number; frames: number; ttffMs: number; gapP95Ms: number;
  serverCpuMs: number; serverSystemMs: number; clientCpuMs: number; clientSystemMs: number;
  serverCpuRoundMs: number; serverPeakRssBytes: number; clientPeakRssBytes: number; check: Check;
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

/** The CPU clock tick of /proc/<pid>/stat, in Hz (`getconf CLK_TCK`; 100 on Linux in practice). */
function clockTicksPerSecond(): number {
  try {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(hz) && hz > 0) return hz;
  } catch { /* no getconf: use the Linux value */ }
  return 100;
}

const CLK_TCK = clockTicksPerSecond();

/** User and system CPU time of a whole process (all its threads), in ms, from /proc/<pid>/stat. */
function processCpu(pid: number): { userMs: number; systemMs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  // There, index 0 is field 3 (state), so utime (field 14) is index 11 and stime (field 15) index 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = (i: number): number => {
    const n = Number(fields[i]);
    if (!Number.isFinite(n)) throw new Error(`cannot read CPU times from /proc/${pid}/stat`);
    return n;
  };
  return { userMs: ticks(11) * 1000 / CLK_TCK, systemMs: ticks(12) * 1000 / CLK_TCK };
}

/** The process's peak resident set so far (VmHWM in /proc/<pid>/status), in bytes. */
function processPeakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** A server running as a child process. */
interface ServerProcess {
  name: string;
  pid: number;
  /** The WebSocket URL the server printed, once it did. */
  url: Promise<string>;
  /** SIGTERM, then SIGKILL if it has not exited after KILL_GRACE_MS; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `node <args>` in the project folder and waits for its stdout line `listening on ws://...`.
 * Register `stop` with the closer before awaiting `url`, so that a server that fails to start is
 * killed too. Its later output and all of its stderr are passed on, prefixed with its name.
 */
function startServerProcess(name: string, args: string[], stdin?: string): ServerProcess {
  const child: ChildProcess = spawn(process.execPath, args, { cwd: PROJECT, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new BenchError(`could not start ${name}: node ${args.join(' ')}`);
  const pid = child.pid;
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((ok) => { if (!running()) ok(); else child.once('exit', () => ok()); });
  // Last resort if this process exits without reaching `finally` (process.exit, uncaught error).
  const lastResort = (): void => { if (running()) child.kill('SIGKILL'); };
  process.once('exit', lastResort);
  let stopping = false;

  const earlyOutput: string[] = [];
  const url = new Promise<string>((ok, fail) => {
    let listening = false;
    const timer = setTimeout(() => fail(new BenchError(`${name} printed no "listening on" line within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = listening ? null : /listening on (ws:\/\/\S+)/.exec(line);
      if (m) {
        listening = true;
        clearTimeout(timer);
        ok(m[1]!);
      } else if (listening) {
        console.log(`[${name}] ${line}`);
      } else {
        earlyOutput.push(line);
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (!listening) earlyOutput.push(line);
      console.error(`[${name}] ${line}`);
    });
    child.once('error', (e) => { clearTimeout(timer); fail(new BenchError(`${name}: ${e.message}`)); });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!listening) {
        fail(new BenchError(`${name} exited (${signal ?? `code ${code}`}) before listening; it printed:\n${earlyOutput.join('\n') || '(nothing)'}`));
      } else if (!stopping) {
        console.error(`[${name}] exited during the benchmark (${signal ?? `code ${code}`})`);
      }
    });
  });
  url.catch(() => { /* reported by whoever awaits it */ });
  if (stdin !== undefined) {
    child.stdin!.on('error', () => { /* the child died: its exit is reported above */ });
    child.stdin!.end(stdin);
  }

  const stop = async (): Promise<void> => {
    stopping = true;
    if (running()) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((ok) => { timer = setTimeout(ok, KILL_GRACE_MS); })]);
      clearTimeout(timer);
      if (running()) {
        console.error(`[${name}] still running ${KILL_GRACE_MS / 1000} s after SIGTERM: SIGKILL`);
        child.kill('SIGKILL');
        await exited;
      }
    }
    process.off('exit', lastResort);
  };
  return { name, pid, url, stop };
}

/** Builds dist/ if the CLI is missing; says so if it looks older than the server sources. */
function ensureBuild(): string | undefined {
  if (!existsSync(CLI)) {
    console.log(`${relative(PROJECT, CLI)} is missing: running npm run build...`);
    const run = spawnSync('npm', ['run', 'build'], { cwd: PROJECT, stdio: 'inherit' });
    if (run.status !== 0 || !existsSync(CLI)) throw new BenchError(`npm run build failed (exit ${run.status}); dicomstream cannot be started`);
    return undefined;
  }
  const built = statSync(CLI).mtimeMs;
  const newer = ['server', 'shared', 'proto'].flatMap((dir) => {
    const base = join(PROJECT, dir);
    if (!existsSync(base)) return [];
    return (readdirSync(base, { recursive: true }) as string[])
      .filter((f) => /\.(ts|proto)$/.test(f) && !f.endsWith('.d.ts'))
      .map((f) => join(dir, f))
      .filter((f) => statSync(join(PROJECT, f)).mtimeMs > built);
  });
  if (newer.length === 0) return undefined;
  const warning = `dist/ is older than ${newer.length} source file(s) (${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', ...' : ''}): the server measured is the last build; run npm run build`;
  console.warn(`WARNING: ${warning}`);
  return warning;
}

/** Where frame 1 of each instance lies in its file, in `uids` order, for the baseline server to read. */
function frameRanges(root: string, uids: string[], frameBytes: Map<string, number>): Array<{ path: string; offset: number; length: number }> {
  const found = new Map<string, { path: string; offset: number; length: number }>();
  for (const name of readdirSync(root, { recursive: true }) as string[]) {
    const path = join(root, name);
    if (!statSync(path).isFile()) continue;
    let dataSet: dicomParser.DataSet;
    try {
      dataSet = dicomParser.parseDicom(readFileSync(path));
    } catch {
      continue; // not DICOM (or not parseable): the server skips it too
    }
    const uid = dataSet.string('x00080018')?.replace(/\0/g, '').trim();
    const pixels = dataSet.elements['x7fe00010'];
    const length = uid === undefined ? undefined : frameBytes.get(uid);
    if (uid === undefined || length === undefined || found.has(uid)) continue;
    if (!pixels || pixels.encapsulatedPixelData || pixels.length < length) {
      throw new BenchError(`the bare ws baseline needs native (uncompressed) pixel data of at least ${length} bytes; ${path} has ${pixels ? (pixels.encapsulatedPixelData ? 'encapsulated pixel data' : `${pixels.length} bytes`) : 'none'}`);
    }
    // Native pixel data: frame 1 is the first frame-length bytes of the value.
    found.set(uid, { path, offset: pixels.dataOffset, length });
  }
  return uids.map((uid) => {
    const range = found.get(uid);
    if (!range) throw new BenchError(`no file under ${root} holds instance ${uid} with pixel data`);
    return range;
  });
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
 * Runs every client's fetch at once. Client CPU and RSS are this process's; server CPU is the server
 * process's (`serverPid`), read from /proc before and after.
 */
async function measureRound(fetchers: Fetcher[], expected: Expected, serverPid: number): Promise<Round> {
  let peakRss = process.memoryUsage.rss();
  // Each RSS reading parses /proc: sampled every 5 ms it cost ~3 % of the run, every 50 ms it is noise.
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage.rss()); }, 50);
  const serverBefore = processCpu(serverPid);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let traces: Trace[];
  try {
    traces = await Promise.all(fetchers.map((f) => f()));
  } finally {
    clearInterval(sampler);
  }
  const used = process.cpuUsage(cpu);
  const serverAfter = processCpu(serverPid);
  const serverPeakRss = processPeakRss(serverPid);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  const end = Math.max(...traces.map((t) => t.arrivals.at(-1) ?? start));
  // Hashing happens after the clock and CPU counters stop, so it does not slow what is measured.
  const check = traces.map((t) => checkTrace(t, expected)).reduce(addChecks);
  const frames = traces.reduce((n, t) => n + t.frames.length, 0);
  const serverUserMs = serverAfter.userMs - serverBefore.userMs;
  const serverSystemMs = serverAfter.systemMs - serverBefore.systemMs;
  return {
    wallMs: end - start,
    bytes: traces.reduce((n, t) => n + t.frames.reduce((m, f) => m + f.bytes.length, 0), 0),
    frames,
    ttffMs: median(traces.map((t) => (t.arrivals[0] ?? Number.NaN) - t.askedAt)),
    gapP95Ms: percentile(traces.flatMap((t) => t.arrivals.slice(1).map((a, i) => a - (t.arrivals[i] ?? a))), 0.95),
    serverCpuMs: (serverUserMs + serverSystemMs) / frames,
    serverSystemMs: serverSystemMs / frames,
    clientCpuMs: (used.user + used.system) / 1000 / frames,
    clientSystemMs: used.system / 1000 / frames,
    serverCpuRoundMs: serverUserMs + serverSystemMs,
    serverPeakRssBytes: serverPeakRss,
    clientPeakRssBytes: peakRss,
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
  serverCpuMs: number; serverSystemMs: number; clientCpuMs: number; clientSystemMs: number;
  serverPeakRssMib: number; clientPeakRssMib: number;
  runsMibPerS: number[]; runsServerCpuMs: number[]; check: Check;
}

/** Medians over the measured rounds (RSS: the highest peak, since memory is a ceiling). */
function summarise(rounds: Round[]): Summary {
  const rate = (r: Round): number => r.bytes / MIB / (r.wallMs / 1000);
  return {
    mibPerS: median(rounds.map(rate)),
    framesPerS: median(rounds.map((r) => r.frames / (r.wallMs / 1000))),
    ttffMs: median(rounds.map((r) => r.ttffMs)),
    gapP95Ms: median(rounds.map((r) => r.gapP95Ms)),
    serverCpuMs: median(rounds.map((r) => r.serverCpuMs)),
    serverSystemMs: median(rounds.map((r) => r.serverSystemMs)),
    clientCpuMs: median(rounds.map((r) => r.clientCpuMs)),
    clientSystemMs: median(rounds.map((r) => r.clientSystemMs)),
    serverPeakRssMib: Math.max(...rounds.map((r) => r.serverPeakRssBytes)) / MIB,
    clientPeakRssMib: Math.max(...rounds.map((r) => r.clientPeakRssBytes)) / MIB,
    runsMibPerS: rounds.map(rate),
    runsServerCpuMs: rounds.map((r) => r.serverCpuRoundMs),
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
    ['server CPU per frame, ms (user + system)', ds.serverCpuMs, bare.serverCpuMs, 2],
    ['server CPU per frame, of which system, ms', ds.serverSystemMs, bare.serverSystemMs, 2],
    [`client CPU per frame, ms (user + system${clients > 1 ? `, all ${clients} clients` : ''})`, ds.clientCpuMs, bare.clientCpuMs, 2],
    ['client CPU per frame, of which system, ms', ds.clientSystemMs, bare.clientSystemMs, 2],
    ['server peak RSS, MiB (server process, VmHWM)', ds.serverPeakRssMib, bare.serverPeakRssMib, 0],
    ['client peak RSS, MiB (benchmark process, sampled)', ds.clientPeakRssMib, bare.clientPeakRssMib, 0],
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

function report(o: Options, frames: number, frameBytes: number, hashed: boolean, ds: Summary, bare: Summary, warning: string | undefined): string {
  const runs = (s: Summary): string => s.runsMibPerS.map((x) => fmt(x)).join(', ');
  const cpuRuns = (s: Summary): string => s.runsServerCpuMs.map((x) => fmt(x, 0)).join(', ');
  return [
    `# dicomstream streaming benchmark`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- Node ${process.version}, nproc ${nproc()}, ${process.platform}/${process.arch}`,
    `- series: ${relative(PROJECT, o.seriesDir) || o.seriesDir}/uncompressed, ${frames} frames of ${frameBytes} bytes (${fmt(frames * frameBytes / MIB)} MiB)`,
    `- clients: ${o.clients}, each fetching the whole series; 1 warm-up round, then median of ${MEASURED_RUNS} rounds`,
    `- each server is its own process (dicomstream: node dist/server/cli.js serve; baseline: node bench/bare-ws-server.mjs); the clients run in the benchmark process`,
    `- server CPU from /proc/<pid>/stat (clock tick ${fmt(1000 / CLK_TCK, 0)} ms), client CPU from process.cpuUsage()`,
    ...(warning ? [`- WARNING: ${warning}`] : []),
    '',
    table(ds, bare, o.clients),
    '',
    `Rounds, MiB/s: dicomstream ${runs(ds)}; bare ws ${runs(bare)}.`,
    `Server CPU per round, ms: dicomstream ${cpuRuns(ds)}; bare ws ${cpuRuns(bare)}.`,
    '',
    `- ${checkLine('dicomstream', ds.check, hashed)}`,
    `- ${checkLine('bare ws', bare.check, hashed)}`,
    '',
  ].join('\n');
}

/** Set once a signal asked this process to stop: the aborted fetches' errors are then expected. */
let interrupted = false;

/** Collects close actions so that `finally` can undo whatever was started, in reverse; each runs once. */
class Closer {
  private readonly actions: Array<() => Promise<void> | void> = [];
  add(action: () => Promise<void> | void): void { this.actions.push(action); }
  async closeAll(): Promise<void> {
    for (const action of this.actions.splice(0).reverse()) {
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
  const buildWarning = ensureBuild();
  const closer = new Closer();
  // A signal to this process alone (not to its group, as Ctrl-C is) skips `finally` and 'exit' handlers:
  // stop the servers first.
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true;
    console.error(`bench:stream: ${signal}, stopping the servers`);
    void closer.closeAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    // dicomstream as an operator runs it.
    const server = startServerProcess('dicomstream', [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn']);
    closer.add(() => server.stop());
    const url = await server.url;
    console.log(`dicomstream: pid ${server.pid}, ${url}`);
    const clients = await Promise.all(Array.from({ length: options.clients }, () => connect(url, { WebSocket, clientName: 'bench' })));
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

    // The baseline reads the same frames from the files, in manifest order; every round checks them.
    const uids = expected.addresses.map((a) => a.sopInstanceUid);
    const ranges = frameRanges(root, uids, expected.frameBytes);
    const bare = startServerProcess('bare ws', [BARE_SERVER], JSON.stringify(ranges));
    closer.add(() => bare.stop());
    const bareUrl = await bare.url;
    console.log(`bare ws: pid ${bare.pid}, ${bareUrl}`);
    const sockets = await Promise.all(clients.map(() => openBareSocket(bareUrl)));
    for (const ws of sockets) closer.add(() => ws.terminate());

    const dsFetchers = clients.map((c) => dicomstreamFetcher(c, expected.addresses));
    const bareFetchers = sockets.map((ws) => bareFetcher(ws, uids));
    const dsWarmup = await measureRound(dsFetchers, expected, server.pid);
    const bareWarmup = await measureRound(bareFetchers, expected, bare.pid);

    // Alternate the two so that drift (page cache, thermal, GC) hits both alike.
    const dsRounds: Round[] = [];
    const bareRounds: Round[] = [];
    for (let i = 0; i < MEASURED_RUNS; i++) {
      dsRounds.push(await measureRound(dsFetchers, expected, server.pid));
      bareRounds.push(await measureRound(bareFetchers, expected, bare.pid));
      console.log(`round ${i + 1}/${MEASURED_RUNS}: dicomstream ${fmt(dsRounds.at(-1)!.wallMs, 0)} ms, bare ws ${fmt(bareRounds.at(-1)!.wallMs, 0)} ms`);
    }
    const ds = summarise(dsRounds);
    const base = summarise(bareRounds);
    // Warm-up frames are not timed but are checked all the same.
    ds.check = addChecks(ds.check, dsWarmup.check);
    base.check = addChecks(base.check, bareWarmup.check);
    const text = report(options, instances.length, frameBytes, hashed, ds, base, buildWarning);
    console.log('\n' + text);
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'stream-results.md'), text);
    console.log(`written to ${relative(process.cwd(), join(OUT, 'stream-results.md'))}`);
    const clean = isClean(ds.check) && isClean(base.check);
    if (!clean) console.error('FAILED: some frames were missing or did not match');
    return clean ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await closer.closeAll();
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    if (interrupted) return;
    console.error(e instanceof BenchError ? `bench:stream: ${e.message}` : e);
    process.exitCode = 1;
  },
);
