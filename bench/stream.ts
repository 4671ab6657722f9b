// Streaming benchmark: how fast dicomstream delivers a whole 200-slice CT series (512x512, 16 bits)
// over a real WebSocket on 127.0.0.1, next to the raw limit of a bare `ws` server sending the same
// bytes from memory. Run from the project root: `npm run bench:stream [-- --series DIR] [-- --clients N]`.
// Each server runs as its own process (dicomstream as `node dist/server/cli.js serve`, the baseline as
// bench/bare-ws-server.mjs); the clients run here, so server and client CPU are measured apart.
// Results go to stdout and bench/out/stream-results.md; bench/README.md explains the numbers.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { connect } from '../web-client/index.js';
import {
  BARE_SERVER, BenchError, CLI, CLK_TCK, Closer, OUT, PROJECT, addChecks, bareFetcher, checkLine, checkTrace, dicomstreamFetcher,
  ensureBuild, ensureSeries, expectations, fmt, frameLength, frameRanges, isClean, median, nproc, openBareSocket, percentile,
  pickSeries, processCpu, processPeakRss, readSeriesManifest, startServerProcess,
  MIB, type Check, type Expected, type Fetcher, type Trace,
} from './common.js';

const MEASURED_RUNS = 5;

interface Options { seriesDir: string; generate: boolean; clients: number }

/**
 * One round: every client fetched the whole series once, at the same time. CPU figures are per frame;
 * `serverCpuRoundMs` is the server's whole CPU time for the round (a multiple of the clock tick).
 */
interface Round {
  wallMs: number; bytes: number; frames: number; ttffMs: number; gapP95Ms: number;
  serverCpuMs: number; serverSystemMs: number; clientCpuMs: number; clientSystemMs: number;
  serverCpuRoundMs: number; serverPeakRssBytes: number; clientPeakRssBytes: number; check: Check;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({ args: argv, options: { series: { type: 'string' }, clients: { type: 'string', default: '1' } } });
  const clients = Number(values.clients);
  if (!Number.isInteger(clients) || clients < 1) throw new BenchError(`--clients wants a positive integer, not ${values.clients}`);
  const seriesDir = values.series ? resolve(values.series) : join(OUT, 'series');
  return { seriesDir, generate: values.series === undefined, clients };
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
