// Peers benchmark: dicomstream next to the bare `ws` limit and, when the Debian packages `orthanc` and
// `orthanc-dicomweb` are installed, Orthanc's WADO-RS frames endpoint, all serving frame 1 of every
// instance of the same 200-slice uncompressed CT series, with 1, 8 and 32 concurrent clients in one run.
// Run from the project root: `npm run bench:peers [-- --clients 1,8,32] [-- --series DIR] [-- --no-orthanc] [-- --dicomweb]`.
// With --dicomweb (`npm run bench:dicomweb`), dicomstream's own WADO-RS frames are a fourth system,
// and then, when Debian's `wrk` is installed, Orthanc's and dicomstream's WADO-RS frames and a bare
// Node HTTP server are also measured under wrk (bench/wado-load.ts); --wrk-only skips the Node clients.
// Each server is its own process; the clients run here. Orthanc has no bind-address option, so when it
// is measured this script re-runs itself under `unshare -n` (a private network namespace with only a
// loopback interface) and every server and client lives there.
// Results go to stdout and bench/out/peers-results.md; bench/README.md explains the numbers.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import type { ImageAttributes } from '../web-client/index.js';
import {
  BARE_SERVER, BenchError, CLI, CLK_TCK, Closer, MIB, OUT, PROJECT, addChecks, bareFetcher, checkLine, checkTrace,
  dicomstreamFetcher, builtClient, ensureBuild, ensureSeries, expectations, fmt, frameLength, isClean, machineCpu, median, nproc, openBareSocket,
  percentile, pickSeries, processCpu, processPeakRss, readSeriesManifest, resetPeakRss, seriesFiles, startServerProcess,
  type Check, type Expected, type Fetcher, type Received, type SeriesFile, type ServerProcess,
} from './common.js';
import { findWrk, loadBlocks, wrkVersion, type LoadTarget } from './wado-load.js';
import { findOrthanc, http, inNamespaceForOrthanc, loopbackOnly, resentOnStaleSocket, singlePart, startOrthanc } from './orthanc.js';

/** The built client (dist/), loaded once the build is checked. */
let connect: Awaited<ReturnType<typeof builtClient>>['connect'];

const DEFAULT_CLIENTS = [1, 8, 32];
/** A round that takes longer than this fails its system (for this client count) instead of hanging the run. */
const ROUND_TIMEOUT_MS = 180_000;
const WADO_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const RESULTS = join(OUT, 'peers-results.md');
/** wrk: measured runs per system and connection count, their length, and the warm-up run's. */
const WRK_ROUNDS = 5;
const WRK_SECONDS = 5;
const WRK_WARMUP_SECONDS = 2;

/** Measured rounds after the warm-up: fewer with many clients, so that the run stays within a few minutes. */
function measuredRounds(clients: number): number {
  return clients <= 1 ? 5 : clients <= 8 ? 3 : 2;
}

interface Options { seriesDir: string; generate: boolean; clientCounts: number[]; orthanc: boolean; dicomweb: boolean; wrkOnly: boolean; serverArgs: string[] }

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: { series: { type: 'string' }, clients: { type: 'string' }, 'no-orthanc': { type: 'boolean', default: false }, dicomweb: { type: 'boolean', default: false }, 'wrk-only': { type: 'boolean', default: false }, 'server-arg': { type: 'string', multiple: true, default: [] } },
  });
  const clientCounts = values.clients === undefined ? DEFAULT_CLIENTS : values.clients.split(',').map((s) => Number(s.trim()));
  if (clientCounts.length === 0 || !clientCounts.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new BenchError(`--clients wants positive integers separated by commas (e.g. 1,8,32), not ${values.clients}`);
  }
  const seriesDir = values.series ? resolve(values.series) : join(OUT, 'series');
  const wrkOnly = values['wrk-only'];
  if (wrkOnly && !values.dicomweb) throw new BenchError('--wrk-only goes with --dicomweb');
  return { seriesDir, generate: values.series === undefined, clientCounts, orthanc: !values['no-orthanc'], dicomweb: values.dicomweb, wrkOnly, serverArgs: values['server-arg'] };
}

/** One WADO-RS frames request at a time, over one kept-alive connection, in series order (Orthanc's root, or dicomstream's). */
function wadoFetcher(port: number, agent: Agent, files: SeriesFile[], root = '/dicom-web'): Fetcher {
  return async () => {
    const arrivals: number[] = [];
    const requestedAt: number[] = [];
    const frames: Received[] = [];
    const askedAt = performance.now();
    for (const f of files) {
      const path = `${root}/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}/frames/1`;
      const asked = performance.now();
      const answer = await http(agent, port, 'GET', path, { Accept: WADO_ACCEPT });
      if (answer.status !== 200) throw new Error(`${root} answered HTTP ${answer.status} to GET ${path}: ${answer.body.toString('utf8', 0, 300)}`);
      frames.push({ uid: f.sopUid, bytes: singlePart(answer.body, answer.contentType) });
      arrivals.push(performance.now());
      requestedAt.push(asked);
    }
    return { askedAt, arrivals, frames, requestedAt };
  };
}

// ---------------------------------------------------------------------------------------------------
// Rounds and their figures.

/** A server under test: its process, and how to open N clients on it. */
interface System {
  name: string;
  pid: number;
  /** Opens `clients` clients, registering their close actions with `closer`; one fetcher each. */
  open(clients: number, closer: Closer): Promise<Fetcher[]>;
}

/** One round: all clients fetched the whole series once, at the same time. */
interface Round {
  wallMs: number; bytes: number; frames: number;
  /** Per client: its first frame's arrival after its first request. */
  ttffMs: number[];
  /** Per frame of every client: arrival minus the time of the request that asked for it. */
  latencyMs: number[];
  /** Per frame of every client: arrival minus the client's first request of the round. */
  sinceStartMs: number[];
  serverCpuMs: number; serverSystemMs: number; clientCpuMs: number; serverCpuRoundMs: number;
  serverPeakRssBytes: number; check: Check;
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => { timer = setTimeout(() => fail(new Error(`${what} did not finish within ${ms / 1000} s`)), ms); });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function measureRound(fetchers: Fetcher[], expected: Expected, serverPid: number, what: string): Promise<Round> {
  const serverBefore = processCpu(serverPid);
  const cpu = process.cpuUsage();
  const start = performance.now();
  const traces = await withTimeout(Promise.all(fetchers.map((f) => f())), ROUND_TIMEOUT_MS, what);
  const used = process.cpuUsage(cpu);
  const serverAfter = processCpu(serverPid);
  const serverPeakRss = processPeakRss(serverPid);
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
    ttffMs: traces.map((t) => (t.arrivals[0] ?? Number.NaN) - t.askedAt),
    latencyMs: traces.flatMap((t) => t.arrivals.map((a, i) => a - (t.requestedAt?.[i] ?? t.askedAt))),
    sinceStartMs: traces.flatMap((t) => t.arrivals.map((a) => a - t.askedAt)),
    serverCpuMs: (serverUserMs + serverSystemMs) / frames,
    serverSystemMs: serverSystemMs / frames,
    clientCpuMs: (used.user + used.system) / 1000 / frames,
    serverCpuRoundMs: serverUserMs + serverSystemMs,
    serverPeakRssBytes: serverPeakRss,
    check,
  };
}

interface Summary {
  mibPerS: number; framesPerS: number; ttffMs: number;
  latencyP50Ms: number; latencyP99Ms: number; sinceStartP50Ms: number; sinceStartP99Ms: number;
  serverCpuMs: number; serverSystemMs: number; clientCpuMs: number; serverPeakRssMib: number;
  runsMibPerS: number[]; runsServerCpuMs: number[]; warmupMibPerS: number; warmupServerCpuMs: number;
}

/**
 * Throughput and CPU: medians over the measured rounds. Time to first frame: median over every client
 * of every measured round. Latencies: percentiles over every frame of every client of every measured
 * round. Peak RSS: the highest, warm-up included (it is read from VmHWM, reset before the warm-up).
 */
function summarise(rounds: Round[], warmup: Round): Summary {
  const rate = (r: Round): number => r.bytes / MIB / (r.wallMs / 1000);
  const latencies = rounds.flatMap((r) => r.latencyMs);
  const sinceStart = rounds.flatMap((r) => r.sinceStartMs);
  return {
    mibPerS: median(rounds.map(rate)),
    framesPerS: median(rounds.map((r) => r.frames / (r.wallMs / 1000))),
    ttffMs: median(rounds.flatMap((r) => r.ttffMs)),
    latencyP50Ms: percentile(latencies, 0.5),
    latencyP99Ms: percentile(latencies, 0.99),
    sinceStartP50Ms: percentile(sinceStart, 0.5),
    sinceStartP99Ms: percentile(sinceStart, 0.99),
    serverCpuMs: median(rounds.map((r) => r.serverCpuMs)),
    serverSystemMs: median(rounds.map((r) => r.serverSystemMs)),
    clientCpuMs: median(rounds.map((r) => r.clientCpuMs)),
    serverPeakRssMib: Math.max(warmup.serverPeakRssBytes, ...rounds.map((r) => r.serverPeakRssBytes)) / MIB,
    runsMibPerS: rounds.map(rate),
    runsServerCpuMs: rounds.map((r) => r.serverCpuRoundMs),
    warmupMibPerS: rate(warmup),
    warmupServerCpuMs: warmup.serverCpuRoundMs,
  };
}

/** One system at one client count: its rounds, or why it stopped. */
interface Run {
  system: System;
  fetchers?: Fetcher[];
  rounds: Round[];
  warmup?: Round;
  summary?: Summary;
  check: Check;
  error?: string;
  peakReset: boolean;
}

interface Block { clients: number; measured: number; runs: Run[] }

const NO_FRAMES: Check = { frames: 0, wrongSize: 0, wrongHash: 0, missing: 0 };

/** Set once a signal asked this process to stop: the aborted fetches' errors are then expected. */
let interrupted = false;

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** All systems with `clients` clients each: one warm-up round, then the measured rounds, alternating systems. */
async function runBlock(systems: System[], clients: number, expected: Expected): Promise<Block> {
  const measured = measuredRounds(clients);
  const closer = new Closer();
  const runs: Run[] = systems.map((system) => ({ system, rounds: [], check: NO_FRAMES, peakReset: false }));
  console.log(`\n${clients} client(s): 1 warm-up round, then ${measured} measured rounds of each system, alternating`);
  try {
    for (const run of runs) {
      try {
        run.fetchers = await run.system.open(clients, closer);
      } catch (e) {
        if (interrupted) throw e;
        run.error = `could not open ${clients} client(s): ${describe(e)}`;
        console.error(`${run.system.name}: ${run.error}`);
      }
    }
    for (let i = 0; i <= measured; i++) {
      const label = i === 0 ? 'warm-up' : `round ${i}/${measured}`;
      const times: string[] = [];
      for (const run of runs) {
        const fetchers = run.fetchers;
        if (run.error || !fetchers) continue;
        if (i === 0) run.peakReset = resetPeakRss(run.system.pid);
        try {
          const round = await measureRound(fetchers, expected, run.system.pid, `${run.system.name}, ${clients} client(s), ${label}`);
          if (i === 0) run.warmup = round;
          else run.rounds.push(round);
          run.check = addChecks(run.check, round.check);
          times.push(`${run.system.name} ${fmt(round.wallMs, 0)} ms`);
        } catch (e) {
          if (interrupted) throw e;
          run.error = `${label} failed: ${describe(e)}`;
          console.error(`${run.system.name}, ${clients} client(s): ${run.error}`);
        }
      }
      console.log(`  ${label}: ${times.join(', ') || '(no system left)'}`);
    }
  } finally {
    await closer.closeAll();
  }
  for (const run of runs) {
    if (!run.error && run.warmup && run.rounds.length > 0) run.summary = summarise(run.rounds, run.warmup);
  }
  return { clients, measured, runs };
}

/** CPU time of this process and the servers so far, in ms. */
function ownCpuMs(pids: number[]): number {
  const self = process.cpuUsage();
  return (self.user + self.system) / 1000 + processCpu(process.pid).childrenMs + pids.reduce((sum, pid) => { const c = processCpu(pid); return sum + c.userMs + c.systemMs; }, 0);
}

// ---------------------------------------------------------------------------------------------------
// Output.

function table(block: Block): string {
  const n = block.clients;
  const all = n > 1 ? ` (all ${n} clients)` : '';
  const rows: Array<[string, (s: Summary) => number, number]> = [
    [`throughput, MiB/s of frame bytes${all}`, (s) => s.mibPerS, 1],
    [`frames/s${all}`, (s) => s.framesPerS, 0],
    ['time to first frame, ms (median client)', (s) => s.ttffMs, 2],
    ['frame latency p50, ms (from the request that asked for the frame)', (s) => s.latencyP50Ms, 2],
    ['frame latency p99, ms (same)', (s) => s.latencyP99Ms, 2],
    ["frame arrival p50, ms (from the client's first request of the round)", (s) => s.sinceStartP50Ms, 1],
    ["frame arrival p99, ms (same)", (s) => s.sinceStartP99Ms, 1],
    ['server CPU per frame, ms (user + system)', (s) => s.serverCpuMs, 3],
    ['server CPU per frame, of which system, ms', (s) => s.serverSystemMs, 3],
    [`client CPU per frame, ms (benchmark process${n > 1 ? `, all ${n} clients` : ''})`, (s) => s.clientCpuMs, 2],
    ['server peak RSS, MiB (VmHWM during these rounds)', (s) => s.serverPeakRssMib, 0],
  ];
  const byName = (name: string) => block.runs.find((r) => r.system.name === name);
  const cell = (run: Run | undefined, get: (s: Summary) => number, d: number): string =>
    run?.summary ? fmt(get(run.summary), d) : 'failed';
  const ratio = (a: Run | undefined, b: Run | undefined, get: (s: Summary) => number): string =>
    a?.summary && b?.summary ? fmt(get(a.summary) / get(b.summary), 2) : 'n/a';
  const [ds, bare, orthanc, wado] = ['dicomstream', 'bare ws', 'Orthanc', 'dicomstream WADO-RS'].map(byName);
  const columns: Array<[string, Run | undefined]> = [['dicomstream', ds], ['bare ws', bare], ['Orthanc WADO-RS', orthanc], ['dicomstream WADO-RS', wado]];
  const ratios: Array<[string, Run | undefined, Run | undefined]> = [
    ['dicomstream / bare ws', ds, bare], ['dicomstream / Orthanc', ds, orthanc],
    ['dicomstream WADO-RS / Orthanc', wado, orthanc], ['dicomstream WADO-RS / dicomstream', wado, ds],
  ];
  const shown = columns.filter(([, r]) => r !== undefined);
  const shownRatios = ratios.filter(([, a, b]) => a !== undefined && b !== undefined);
  const head = [`| metric | ${[...shown.map(([n]) => n), ...shownRatios.map(([n]) => n)].join(' | ')} |`, `|---|${[...shown, ...shownRatios].map(() => '---:').join('|')}|`];
  const lines = rows.map(([name, get, d]) =>
    `| ${name} | ${[...shown.map(([, r]) => cell(r, get, d)), ...shownRatios.map(([, a, b]) => ratio(a, b, get))].join(' | ')} |`);
  return [...head, ...lines].join('\n');
}

function blockText(block: Block, hashed: boolean): string {
  const title = `### ${block.clients} client${block.clients > 1 ? 's' : ''} (1 warm-up round, ${block.measured} measured)`;
  const runsLine = (what: string, get: (s: Summary) => number[], d: number): string =>
    `${what}: ` + block.runs.map((r) => `${r.system.name} ${r.summary ? get(r.summary).map((x) => fmt(x, d)).join(', ') : '-'}`).join('; ') + '.';
  return [
    title,
    '',
    table(block),
    '',
    runsLine('Rounds, MiB/s', (s) => s.runsMibPerS, 1),
    'Warm-up round (not in the table), MiB/s and server CPU ms: ' +
      block.runs.map((r) => `${r.system.name} ${r.summary ? `${fmt(r.summary.warmupMibPerS)} (${fmt(r.summary.warmupServerCpuMs, 0)} ms)` : '-'}`).join('; ') + '.',
    runsLine('Server CPU per round, ms', (s) => s.runsServerCpuMs, 0),
    ...block.runs.map((r) => `- ${checkLine(r.system.name, r.check, hashed)}${r.error ? `; FAILED: ${r.error}` : ''}`),
    ...block.runs.filter((r) => !r.peakReset && !r.error).map((r) => `- ${r.system.name}: VmHWM could not be reset, so its peak RSS is the peak since it started`),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  let orthanc = options.orthanc ? findOrthanc() : undefined;
  let orthancNote: string;
  if (!options.orthanc) orthancNote = 'Orthanc: skipped (--no-orthanc)';
  else if (!orthanc) orthancNote = 'Orthanc not installed: skipped';
  else orthancNote = `Orthanc: ${orthanc.versions}`;
  const placed = orthanc ? await inNamespaceForOrthanc() : undefined;
  if (placed && 'rerunExit' in placed) return placed.rerunExit;
  if (placed) {
    orthancNote = placed.skipped;
    orthanc = undefined;
  }
  console.log(orthancNote);
  const inNamespace = loopbackOnly();

  if (options.generate) ensureSeries(options.seriesDir);
  const root = join(options.seriesDir, 'uncompressed');
  if (!existsSync(root)) throw new BenchError(`no uncompressed/ folder in ${options.seriesDir}`);
  const manifestFile = readSeriesManifest(options.seriesDir);
  const buildWarning = ensureBuild();
  ({ connect } = await builtClient());
  const closer = new Closer();
  // A signal to this process alone (not to its group, as Ctrl-C is) skips `finally` and 'exit' handlers:
  // stop the servers first. A second signal (Ctrl-C reaches this process both from the terminal and
  // from the copy outside the namespace) changes nothing.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    console.error(`bench:peers: ${signal}, stopping the servers`);
    void closer.closeAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const dsServer = startServerProcess('dicomstream', [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...options.serverArgs]);
    closer.add(() => dsServer.stop());
    const dsUrl = await dsServer.url;
    console.log(`dicomstream: pid ${dsServer.pid}, ${dsUrl}`);
    // One client to learn the series and its frames; each block opens its own.
    const probe = await connect(dsUrl, { WebSocket, clientName: 'bench' });
    let seriesUid: string;
    let instances: ImageAttributes[];
    try {
      seriesUid = await pickSeries(probe, manifestFile.series_instance_uid);
      instances = (await probe.openSeries(seriesUid)).instances;
    } finally {
      probe.close();
    }
    if (instances.length === 0) throw new BenchError(`series ${seriesUid} has no instances`);
    const expected = expectations(instances, manifestFile.slice_pixel_sha256);
    const hashed = expected.sha256.size === instances.length;
    const frameBytes = frameLength(instances[0]!);
    console.log(`series ${seriesUid}: ${instances.length} instances, ${frameBytes} bytes a frame`);
    if (!hashed) console.log('series-manifest.json has no per-slice sha256 for these instances: checking frame sizes only');

    const uids = expected.addresses.map((a) => a.sopInstanceUid);
    const files = seriesFiles(root, uids, expected.frameBytes);
    const bareServer = startServerProcess('bare ws', [BARE_SERVER], JSON.stringify(files.map(({ path, offset, length }) => ({ path, offset, length }))));
    closer.add(() => bareServer.stop());
    const bareUrl = await bareServer.url;
    console.log(`bare ws: pid ${bareServer.pid}, ${bareUrl}`);

    const systems: System[] = [
      {
        name: 'dicomstream',
        pid: dsServer.pid,
        async open(n, blockCloser) {
          const clients = await Promise.all(Array.from({ length: n }, async () => {
            const c = await connect(dsUrl, { WebSocket, clientName: 'bench' });
            blockCloser.add(() => c.close());
            return c;
          }));
          // Every client browses as a viewer would.
          await Promise.all(clients.map(async (c) => { await c.listStudies(); await c.openSeries(seriesUid); }));
          return clients.map((c) => dicomstreamFetcher(c, expected.addresses));
        },
      },
      {
        name: 'bare ws',
        pid: bareServer.pid,
        async open(n, blockCloser) {
          const sockets = await Promise.all(Array.from({ length: n }, async () => {
            const ws = await openBareSocket(bareUrl);
            blockCloser.add(() => ws.terminate());
            return ws;
          }));
          return sockets.map((ws) => bareFetcher(ws, uids));
        },
      },
    ];
    const peer = orthanc ? await startOrthanc(orthanc, files, closer) : undefined;
    if (peer) {
      systems.push({
        name: 'Orthanc',
        pid: peer.server.pid,
        async open(n, blockCloser) {
          return Array.from({ length: n }, () => {
            const agent = new Agent({ keepAlive: true, maxSockets: 1 });
            blockCloser.add(() => agent.destroy());
            return wadoFetcher(peer.port, agent, files);
          });
        },
      });
    }

    if (options.dicomweb) {
      const port = Number(new URL(dsUrl).port);
      systems.push({
        name: 'dicomstream WADO-RS',
        pid: dsServer.pid,
        async open(n, blockCloser) {
          return Array.from({ length: n }, () => {
            const agent = new Agent({ keepAlive: true, maxSockets: 1 });
            blockCloser.add(() => agent.destroy());
            return wadoFetcher(port, agent, files, '/dicomweb');
          });
        },
      });
    }

    const blocks: Block[] = [];
    const texts: string[] = [];
    let wrkFailed = false;
    // How busy the rest of the machine was while this measured: a busy neighbour skews every figure.
    const pids = systems.map((s) => s.pid);
    const busyBefore = machineCpu().busyMs;
    const stealBefore = machineCpu().stealMs;
    const ownBefore = ownCpuMs(pids);
    const measuringSince = performance.now();
    for (const n of options.wrkOnly ? [] : options.clientCounts) {
      const block = await runBlock(systems, n, expected);
      blocks.push(block);
      const text = blockText(block, hashed);
      texts.push(text);
      console.log('\n' + text);
    }
    const wrk = options.dicomweb ? findWrk() : undefined;
    let wrkNote = options.dicomweb ? 'wrk not installed (Debian package `wrk`): no load-generator rounds' : undefined;
    if (wrk) {
      const dsPort = Number(new URL(dsUrl).port);
      const wadoPath = (root: string) => (f: SeriesFile) => `${root}/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}/frames/1`;
      const targets: LoadTarget[] = [
        ...(peer ? [{ name: 'Orthanc WADO-RS', pid: peer.server.pid, port: peer.port, paths: files.map(wadoPath('/dicom-web')) }] : []),
        { name: 'dicomstream WADO-RS', pid: dsServer.pid, port: dsPort, paths: files.map(wadoPath('/dicomweb')) },
        { name: 'bare Node http', pid: bareServer.pid, port: Number(new URL(bareUrl).port), paths: files.map((_, i) => `/frames/${i + 1}`) },
      ];
      const dir = mkdtempSync(join(tmpdir(), 'dicomstream-bench-wrk-'));
      closer.add(() => rmSync(dir, { recursive: true, force: true }));
      console.log(`\nwrk: ${targets.map((t) => t.name).join(', ')} at ${options.clientCounts.join(', ')} connection(s)`);
      const load = await loadBlocks(targets, { wrk, dir, accept: WADO_ACCEPT, frameBytes, connections: options.clientCounts, rounds: WRK_ROUNDS, seconds: WRK_SECONDS, warmupSeconds: WRK_WARMUP_SECONDS }, (line) => console.log(line));
      console.log('\n' + load.text);
      texts.push(load.text);
      if (!load.clean) wrkFailed = true;
      wrkNote = `${wrkVersion(wrk)} (-t 1, one thread; --timeout 30s), in the same namespace; each connection sends one GET …/frames/1 at a time, the connections together walking the series' ${files.length} frames in order, over and over; the bare Node http server answers GET /frames/{n} with the same bytes from memory (bench/bare-ws-server.mjs); wrk's CPU from this process's cutime + cstime`;
    }
    const othersMs = (machineCpu().busyMs - busyBefore) - (ownCpuMs(pids) - ownBefore);
    const measuringS = (performance.now() - measuringSince) / 1000;
    const stolenS = (machineCpu().stealMs - stealBefore) / 1000;
    const quiet = `other processes used ${fmt(Math.max(0, othersMs) / 1000)} s of CPU during the ${fmt(measuringS, 0)} s of rounds (machine busy time from /proc/stat minus this process's, its children's and the servers'); the hypervisor took ${fmt(stolenS)} s (steal, ${fmt(stolenS / (measuringS * availableParallelism()) * 100, 0)} % of all cores)`;
    console.log(quiet);

    const header = [
      `# dicomstream, bare ws${orthanc ? ' and Orthanc WADO-RS' : ''}: one series to ${options.clientCounts.join(', ')} concurrent client(s)`,
      '',
      `- date: ${new Date().toISOString()}`,
      `- Node ${process.version}, nproc ${nproc()}, ${process.platform}/${process.arch}`,
      `- series: ${relative(PROJECT, options.seriesDir) || options.seriesDir}/uncompressed, ${instances.length} frames of ${frameBytes} bytes (${fmt(instances.length * frameBytes / MIB)} MiB) per client and round`,
      `- clients: ${options.clientCounts.join(', ')}; for each count, 1 warm-up round and then ${options.clientCounts.map(measuredRounds).join(' / ')} measured rounds of each system, alternating`,
      `- each server is its own process (dicomstream: node dist/server/cli.js serve${options.serverArgs.length ? ` ${options.serverArgs.join(' ')}` : ''}; bare ws: node bench/bare-ws-server.mjs; Orthanc: its Debian binary with the DICOMweb plugin); the clients (dist/web-client, as built) run in the benchmark process`,
      `- ${orthancNote}${orthanc ? '; frames by WADO-RS GET .../frames/1, one request at a time per client, kept-alive connection per client' : ''}`,
      `- network: ${inNamespace ? 'a private network namespace with only loopback (unshare -n); every server and client in it' : 'the host namespace'}, 127.0.0.1`,
      `- server CPU from /proc/<pid>/stat (clock tick ${fmt(1000 / CLK_TCK, 0)} ms), server peak RSS from VmHWM in /proc/<pid>/status (reset through clear_refs before each warm-up), client CPU from process.cpuUsage()`,
      `- ${quiet}`,
      ...(wrkNote ? [`- load generator: ${wrkNote}`] : []),
      ...(resentOnStaleSocket() > 0 ? [`- ${resentOnStaleSocket()} HTTP request(s) resent after the server had closed an idle kept-alive connection`] : []),
      ...(buildWarning ? [`- WARNING: ${buildWarning}`] : []),
      '',
    ].join('\n');
    const text = [header, ...texts].join('\n');
    mkdirSync(OUT, { recursive: true });
    const results = options.dicomweb ? join(OUT, 'dicomweb-results.md') : RESULTS;
    writeFileSync(results, text);
    console.log(`written to ${relative(process.cwd(), results)}`);
    const failed = blocks.flatMap((b) => b.runs.filter((r) => r.error !== undefined || !isClean(r.check)));
    if (wrkFailed) {
      console.error('FAILED: a wrk run counted errors or short answers (see above)');
      return 1;
    }
    if (failed.length > 0) {
      console.error(`FAILED: ${failed.map((r) => r.system.name).join(', ')}: errors, or frames missing or not matching (see above)`);
      return 1;
    }
    return 0;
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
    console.error(e instanceof BenchError ? `bench:peers: ${e.message}` : e);
    process.exitCode = 1;
  },
);
