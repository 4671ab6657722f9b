// Helpers shared by the benchmarks bench/stream.ts and bench/peers.ts: the series and its expected
// frames, servers run as child processes, CPU and memory of a process from /proc, the dicomstream and
// bare-ws clients, frame checks, percentiles. bench/README.md explains what is measured.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pathToFileURL } from 'node:url';
import dicomParser from 'dicom-parser';
import { WebSocket, type RawData } from 'ws';
import type { DicomStreamClient, FrameAddress, ImageAttributes } from '../web-client/index.js';

export const PROJECT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = join(PROJECT, 'bench', 'out');
export const CLI = join(PROJECT, 'dist', 'server', 'cli.js');
export const BARE_SERVER = join(PROJECT, 'bench', 'bare-ws-server.mjs');
/** How long a server may take to print its URL (dicomstream indexes the folder first). */
export const START_TIMEOUT_MS = 120_000;
/** After SIGTERM, how long a server gets before SIGKILL. */
export const KILL_GRACE_MS = 2000;
export const MAKE_SERIES = resolve(PROJECT, '..', 'shared', 'corpus', 'make-series.py');
export const PYTHON = '/usr/bin/python3';
export const MIB = 1024 * 1024;

/** A failure the user can fix (missing tools, bad arguments): printed without a stack trace. */
export class BenchError extends Error {}

/** One frame as a client received it; `uid` names the instance it must match. */
export interface Received { uid: string; bytes: Uint8Array }

/**
 * One client's whole-series fetch: when it asked, when each frame arrived, what arrived. A client that
 * asks for each frame on its own (HTTP) also gives `requestedAt`, when it asked for each frame; without
 * it every frame was asked for at `askedAt`.
 */
export interface Trace { askedAt: number; arrivals: number[]; frames: Received[]; requestedAt?: number[] }

/** What every frame must be: byte length, and sha256 of the stored pixels when the manifest has it. */
export interface Expected { addresses: FrameAddress[]; frameBytes: Map<string, number>; sha256: Map<string, string> }

export interface Check { frames: number; wrongSize: number; wrongHash: number; missing: number }

/** Something that can fetch the whole series for one client, timed. */
export type Fetcher = () => Promise<Trace>;

/** Makes the series with the corpus generator unless a complete one is there already. */
export function ensureSeries(seriesDir: string): void {
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

export interface SeriesManifestFile { study_instance_uid?: string; series_instance_uid?: string; slice_pixel_sha256?: string[] }

/** The generator's manifest, if the folder has one (a `--series` folder may not). */
export function readSeriesManifest(seriesDir: string): SeriesManifestFile {
  const path = join(seriesDir, 'series-manifest.json');
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as SeriesManifestFile : {};
}

/** The series to fetch: the manifest's, else the one with the most instances. */
export async function pickSeries(client: DicomStreamClient, wanted: string | undefined): Promise<string> {
  const all = (await client.listStudies()).flatMap((s) => s.series);
  const chosen = all.find((s) => s.seriesInstanceUid === wanted) ?? all.sort((a, b) => b.numberOfInstances - a.numberOfInstances)[0];
  if (!chosen) throw new BenchError('the server found no series in the folder');
  return chosen.seriesInstanceUid;
}

export function frameLength(i: ImageAttributes): number {
  return i.rows * i.columns * (i.samplesPerPixel || 1) * i.bitsAllocated / 8;
}

/** Frame 1 of every instance, with the size and hash each must have. */
export function expectations(instances: ImageAttributes[], sliceSha: string[] | undefined): Expected {
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

export function dicomstreamFetcher(client: DicomStreamClient, addresses: FrameAddress[]): Fetcher {
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
export function clockTicksPerSecond(): number {
  try {
    const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(hz) && hz > 0) return hz;
  } catch { /* no getconf: use the Linux value */ }
  return 100;
}

export const CLK_TCK = clockTicksPerSecond();

/**
 * The whole machine's CPU time so far (all cores, the first line of /proc/stat), in ms: its own
 * work, and steal (time the hypervisor gave to other machines, counted apart).
 */
export function machineCpu(): { busyMs: number; stealMs: number } {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = ticks;
  return { busyMs: (user + nice + system + irq + softirq) * 1000 / CLK_TCK, stealMs: steal * 1000 / CLK_TCK };
}

/**
 * User and system CPU time of a whole process (all its threads), in ms, from /proc/<pid>/stat;
 * and that of its children it has waited for (cutime + cstime).
 */
export function processCpu(pid: number): { userMs: number; systemMs: number; childrenMs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  // There, index 0 is field 3 (state), so utime (field 14) is index 11 and stime (field 15) index 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = (i: number): number => {
    const n = Number(fields[i]);
    if (!Number.isFinite(n)) throw new Error(`cannot read CPU times from /proc/${pid}/stat`);
    return n;
  };
  return { userMs: ticks(11) * 1000 / CLK_TCK, systemMs: ticks(12) * 1000 / CLK_TCK, childrenMs: (ticks(13) + ticks(14)) * 1000 / CLK_TCK };
}

/** The process's peak resident set so far (VmHWM in /proc/<pid>/status), in bytes. */
export function processPeakRss(pid: number): number {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/**
 * Resets the process's VmHWM to its current RSS (`echo 5 > /proc/<pid>/clear_refs`, Linux 4.0+; needs
 * the right to write there: the same user, or root), so that a later `processPeakRss` is the peak
 * since now. False if the kernel refused.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** A server running as a child process. */
export interface ServerProcess {
  name: string;
  pid: number;
  /** The URL the server printed (or `ready.url`), once it said it was ready. */
  url: Promise<string>;
  /** SIGTERM, then SIGKILL if it has not exited after the grace time; resolves once it has exited. */
  stop(): Promise<void>;
}

/** How `startServerProcess` runs a server that is not a Node script printing `listening on ws://...`. */
export interface StartOptions {
  /** The program; default: this Node (`process.execPath`). */
  command?: string;
  /**
   * The output line that says the server is ready, and on which stream; the URL is `url` if given,
   * else the pattern's first group. Default: /listening on (ws:\/\/\S+)/ on stdout.
   */
  ready?: { pattern: RegExp; on: 'stdout' | 'stderr'; url?: string };
  /** After SIGTERM, how long before SIGKILL; default KILL_GRACE_MS. */
  killGraceMs?: number;
  /** Which stderr lines to pass on (default: all); all are kept for the report of a failed start. */
  echo?: (line: string) => boolean;
}

/**
 * Starts `node <args>` (or `options.command <args>`) in the project folder and waits for its ready
 * line (default: stdout `listening on ws://...`). Register `stop` with the closer before awaiting
 * `url`, so that a server that fails to start is killed too. Its later stdout and its stderr are
 * passed on, prefixed with its name.
 */
export function startServerProcess(name: string, args: string[], stdin?: string, options: StartOptions = {}): ServerProcess {
  const command = options.command ?? process.execPath;
  const ready: NonNullable<StartOptions['ready']> = options.ready ?? { pattern: /listening on (ws:\/\/\S+)/, on: 'stdout' };
  const killGraceMs = options.killGraceMs ?? KILL_GRACE_MS;
  const echo = options.echo ?? ((): boolean => true);
  const child: ChildProcess = spawn(command, args, { cwd: PROJECT, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new BenchError(`could not start ${name}: ${command === process.execPath ? 'node' : command} ${args.join(' ')}`);
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
    const timer = setTimeout(() => fail(new BenchError(`${name} printed no line matching ${ready.pattern} within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    /** True if `line` is the ready line (then the server is ready). */
    const isReady = (line: string): boolean => {
      const m = listening ? null : ready.pattern.exec(line);
      if (!m) return false;
      listening = true;
      clearTimeout(timer);
      ok(ready.url ?? m[1]!);
      return true;
    };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (ready.on === 'stdout' && isReady(line)) return;
      if (listening) console.log(`[${name}] ${line}`);
      else earlyOutput.push(line);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (!listening) earlyOutput.push(line);
      if (ready.on === 'stderr' && isReady(line)) return;
      if (echo(line)) console.error(`[${name}] ${line}`);
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
      await Promise.race([exited, new Promise<void>((ok) => { timer = setTimeout(ok, killGraceMs); })]);
      clearTimeout(timer);
      if (running()) {
        console.error(`[${name}] still running ${killGraceMs / 1000} s after SIGTERM: SIGKILL`);
        child.kill('SIGKILL');
        await exited;
      }
    }
    process.off('exit', lastResort);
  };
  return { name, pid, url, stop };
}

/** Builds dist/ if the CLI is missing; says so if it looks older than the server sources. */
export function ensureBuild(): string | undefined {
  if (!existsSync(CLI)) {
    console.log(`${relative(PROJECT, CLI)} is missing: running npm run build...`);
    const run = spawnSync('npm', ['run', 'build'], { cwd: PROJECT, stdio: 'inherit' });
    if (run.status !== 0 || !existsSync(CLI)) throw new BenchError(`npm run build failed (exit ${run.status}); dicomstream cannot be started`);
    return undefined;
  }
  const built = statSync(CLI).mtimeMs;
  const newer = ['server', 'shared', 'proto', 'web-client'].flatMap((dir) => {
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

/**
 * The client library as users run it: the build in dist/, not the TypeScript sources through tsx
 * (under tsx the same client spent ~20 % more CPU a frame and ran five times as many full GCs).
 */
export async function builtClient(): Promise<typeof import('../web-client/index.js')> {
  return import(pathToFileURL(join(PROJECT, 'dist', 'web-client', 'index.js')).href) as Promise<typeof import('../web-client/index.js')>;
}

/** Frame 1 of one instance: where it lies in its file, and the UIDs a WADO-RS URL needs. */
export interface SeriesFile { path: string; offset: number; length: number; studyUid: string; seriesUid: string; sopUid: string }

/** Where frame 1 of each instance lies in its file, in `uids` order, for the baseline server to read. */
export function frameRanges(root: string, uids: string[], frameBytes: Map<string, number>): Array<{ path: string; offset: number; length: number }> {
  return seriesFiles(root, uids, frameBytes).map(({ path, offset, length }) => ({ path, offset, length }));
}

/** The file of each instance in `uids`, in that order, with where its frame 1 lies and its UIDs. */
export function seriesFiles(root: string, uids: string[], frameBytes: Map<string, number>): SeriesFile[] {
  const found = new Map<string, SeriesFile>();
  for (const name of readdirSync(root, { recursive: true }) as string[]) {
    const path = join(root, name);
    if (!statSync(path).isFile()) continue;
    let dataSet: dicomParser.DataSet;
    try {
      dataSet = dicomParser.parseDicom(readFileSync(path));
    } catch {
      continue; // not DICOM (or not parseable): the server skips it too
    }
    const text = (tag: string): string | undefined => dataSet.string(tag)?.replace(/\0/g, '').trim();
    const uid = text('x00080018');
    const pixels = dataSet.elements['x7fe00010'];
    const length = uid === undefined ? undefined : frameBytes.get(uid);
    if (uid === undefined || length === undefined || found.has(uid)) continue;
    if (!pixels || pixels.encapsulatedPixelData || pixels.length < length) {
      throw new BenchError(`the bare ws baseline needs native (uncompressed) pixel data of at least ${length} bytes; ${path} has ${pixels ? (pixels.encapsulatedPixelData ? 'encapsulated pixel data' : `${pixels.length} bytes`) : 'none'}`);
    }
    // Native pixel data: frame 1 is the first frame-length bytes of the value.
    found.set(uid, { path, offset: pixels.dataOffset, length, studyUid: text('x0020000d') ?? '', seriesUid: text('x0020000e') ?? '', sopUid: uid });
  }
  return uids.map((uid) => {
    const range = found.get(uid);
    if (!range) throw new BenchError(`no file under ${root} holds instance ${uid} with pixel data`);
    return range;
  });
}

export async function openBareSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  return ws;
}

/** The baseline client: frames arrive in the order the server holds them, which is `uids`. */
export function bareFetcher(ws: WebSocket, uids: string[]): Fetcher {
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

export function checkTrace(trace: Trace, expected: Expected): Check {
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

export function addChecks(a: Check, b: Check): Check {
  return { frames: a.frames + b.frames, wrongSize: a.wrongSize + b.wrongSize, wrongHash: a.wrongHash + b.wrongHash, missing: a.missing + b.missing };
}

export function isClean(c: Check): boolean {
  return c.wrongSize === 0 && c.wrongHash === 0 && c.missing === 0;
}

export function median(xs: number[]): number {
  return percentile(xs, 0.5);
}

/** Linear interpolation between closest ranks; NaN for no data. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (s[lo] ?? 0) + ((s[hi] ?? 0) - (s[lo] ?? 0)) * (at - lo);
}

export function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

export function nproc(): string {
  try {
    return execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    return String(availableParallelism());
  }
}

export function checkLine(name: string, c: Check, hashed: boolean): string {
  const hashes = hashed ? `${c.wrongHash} sha256 mismatches` : 'sha256 not checked (no per-slice hashes in series-manifest.json)';
  return `${name}: ${c.frames} frames checked, ${c.wrongSize} wrong sizes, ${hashes}, ${c.missing} missing`;
}

/** Collects close actions so that `finally` can undo whatever was started, in reverse; each runs once. */
export class Closer {
  private readonly actions: Array<() => Promise<void> | void> = [];
  add(action: () => Promise<void> | void): void { this.actions.push(action); }
  async closeAll(): Promise<void> {
    for (const action of this.actions.splice(0).reverse()) {
      try { await action(); } catch (e) { console.error('while closing:', e); }
    }
  }
}

