// Streaming benchmark: how fast dicomstream delivers a whole 200-slice CT series (512x512, 16 bits)
// over a real WebSocket on 127.0.0.1, next to the raw limit of a bare `ws` server sending the same
// bytes from memory. Run from the project root: `npm run bench:stream [-- --series DIR] [-- --clients N]`.
// Each server runs as its own process (dicomstream as `node dist/server/cli.js serve`, the baseline as
// bench/bare-ws-server.mjs); the clients run here, so server and client CPU are measured apart.
// Rows: a new connection each round (what a viewer opening a series does: cold), one connection
// round after round (warm), a fresh client process's first round (bench/stream-once.mjs), and the
// first frame of a series the server has not opened since it started (cold series).
// Results go to stdout and bench/out/stream-results.md; bench/README.md explains the numbers.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import {
  BARE_SERVER, BenchError, CLI, CLK_TCK, Closer, OUT, PROJECT, addChecks, bareFetcher, checkLine, checkTrace, dicomstreamFetcher,
  builtClient, ensureBuild, ensureSeries, expectations, fmt, frameLength, frameRanges, isClean, median, nproc, openBareSocket, percentile,
  pickSeries, processCpu, processPeakRss, readSeriesManifest, startServerProcess,
  MIB, type Check, type Expected, type Fetcher, type Trace,
} from './common.js';
import type { FrameAddress } from '../web-client/index.js';

/** The built client (dist/), loaded once the build is checked. */
let connect: Awaited<ReturnType<typeof builtClient>>['connect'];

const MEASURED_RUNS = 5;
const ONCE = join(PROJECT, 'bench', 'stream-once.mjs');
const run = promisify(execFile);

interface Options { seriesDir: string; generate: boolean; clients: number; serverArgs: string[] }

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
  const { values } = parseArgs({ args: argv, options: { series: { type: 'string' }, clients: { type: 'string', default: '1' }, 'server-arg': { type: 'string', multiple: true, default: [] } } });
  const clients = Number(values.clients);
  if (!Number.isInteger(clients) || clients < 1) throw new BenchError(`--clients wants a positive integer, not ${values.clients}`);
  const seriesDir = values.series ? resolve(values.series) : join(OUT, 'series');
  return { seriesDir, generate: values.series === undefined, clients, serverArgs: values['server-arg'] };
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

/** Fetches over a new connection: connect, open the series (dicomstream), every frame, close. The clock starts before connecting. */
function coldDicomstreamFetcher(url: string, seriesUid: string, addresses: FrameAddress[]): Fetcher {
  return async () => {
    const askedAt = performance.now();
    const client = await connect(url, { WebSocket, clientName: 'bench' });
    try {
      await client.openSeries(seriesUid);
      const trace = await dicomstreamFetcher(client, addresses)();
      return { ...trace, askedAt };
    } finally {
      client.close();
    }
  };
}

function coldBareFetcher(url: string, uids: string[]): Fetcher {
  return async () => {
    const askedAt = performance.now();
    const ws = await openBareSocket(url);
    try {
      const trace = await bareFetcher(ws, uids)();
      return { ...trace, askedAt };
    } finally {
      ws.close();
    }
  };
}

/** A fresh client process's whole-series fetch (bench/stream-once.mjs): its time, and its frames checked. */
interface Once { mibPerS: number; ttffMs: number; check: Check }

async function fetchOnce(args: string[], expected: Expected, uids: string[]): Promise<Once> {
  const { stdout } = await run(process.execPath, [ONCE, ...args], { cwd: PROJECT, maxBuffer: 16 * MIB });
  const got = JSON.parse(stdout.trim().split('\n').at(-1)!) as { ms: number; ttffMs: number; frames: Array<{ uid: string; length: number; sha256: string }> };
  const check: Check = { frames: got.frames.length, wrongSize: 0, wrongHash: 0, missing: 0 };
  const seen = new Set<string>();
  got.frames.forEach((f, i) => {
    const uid = f.uid || uids[i]!;
    seen.add(uid);
    if (f.length !== expected.frameBytes.get(uid)) check.wrongSize++;
    const hash = expected.sha256.get(uid);
    if (hash !== undefined && hash !== f.sha256) check.wrongHash++;
  });
  check.missing = uids.filter((u) => !seen.has(u)).length;
  const bytes = got.frames.reduce((n, f) => n + f.length, 0);
  return { mibPerS: bytes / MIB / (got.ms / 1000), ttffMs: got.ttffMs, check };
}

/**
 * The first frame of a series the server has not opened since it started (its index read from the
 * saved index, its file not yet opened): a new server process each time, from the saved index.
 * The open series and first frame times, as the client on loopback sees them.
 */
async function coldSeries(root: string, seriesUid: string, first: FrameAddress, runs: number, serverArgs: string[]): Promise<{ openMs: number[]; firstFrameMs: number[] }> {
  const openMs: number[] = [];
  const firstFrameMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const server = startServerProcess('dicomstream (cold series)', [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...serverArgs], undefined, { echo: () => false });
    try {
      const client = await connect(await server.url, { WebSocket, clientName: 'bench-cold' });
      try {
        const t0 = performance.now();
        await client.openSeries(seriesUid);
        const t1 = performance.now();
        await client.getFrame(first.sopInstanceUid, first.frameNumber);
        firstFrameMs.push(performance.now() - t1);
        openMs.push(t1 - t0);
      } finally {
        client.close();
      }
    } finally {
      await server.stop();
    }
  }
  return { openMs, firstFrameMs };
}

function table(ds: Summary, bare: Summary, clients: number, ttffWhat: string): string {
  const aggregate = clients > 1 ? ` (all ${clients} clients)` : '';
  const rows: Array<[string, number, number, number]> = [
    [`throughput, MiB/s of frame bytes${aggregate}`, ds.mibPerS, bare.mibPerS, 1],
    [`frames/s${aggregate}`, ds.framesPerS, bare.framesPerS, 0],
    [`time to first frame, ms (median client; ${ttffWhat})`, ds.ttffMs, bare.ttffMs, 2],
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

interface Results {
  cold: { ds: Summary; bare: Summary };
  warm: { ds: Summary; bare: Summary };
  fresh: { ds: Once[]; bare: Once[] };
  coldSeries: { openMs: number[]; firstFrameMs: number[] };
}

function report(o: Options, frames: number, frameBytes: number, hashed: boolean, r: Results, warning: string | undefined): string {
  const runs = (s: Summary): string => s.runsMibPerS.map((x) => fmt(x)).join(', ');
  const cpuRuns = (s: Summary): string => s.runsServerCpuMs.map((x) => fmt(x, 0)).join(', ');
  const section = (title: string, { ds, bare }: { ds: Summary; bare: Summary }, ttffWhat: string): string[] => [
    `## ${title}`,
    '',
    table(ds, bare, o.clients, ttffWhat),
    '',
    `Rounds, MiB/s: dicomstream ${runs(ds)}; bare ws ${runs(bare)}.`,
    `Server CPU per round, ms: dicomstream ${cpuRuns(ds)}; bare ws ${cpuRuns(bare)}.`,
    '',
  ];
  const freshRate = (xs: Once[]) => median(xs.map((x) => x.mibPerS));
  const freshTtff = (xs: Once[]) => median(xs.map((x) => x.ttffMs));
  const checks = (name: string, c: Check) => `- ${checkLine(name, c, hashed)}`;
  const freshCheck = (xs: Once[]) => xs.map((x) => x.check).reduce(addChecks);
  return [
    `# dicomstream streaming benchmark`,
    '',
    `- date: ${new Date().toISOString()}`,
    `- Node ${process.version}, nproc ${nproc()}, ${process.platform}/${process.arch}`,
    `- series: ${relative(PROJECT, o.seriesDir) || o.seriesDir}/uncompressed, ${frames} frames of ${frameBytes} bytes (${fmt(frames * frameBytes / MIB)} MiB)`,
    `- clients: ${o.clients}, each fetching the whole series; after 1 warm-up round of each, medians of ${MEASURED_RUNS} rounds, dicomstream and bare ws alternating`,
    `- each server is its own process (dicomstream: node dist/server/cli.js serve${o.serverArgs.length ? ` ${o.serverArgs.join(' ')}` : ''}; baseline: node bench/bare-ws-server.mjs); the clients (dist/web-client, as built) run in the benchmark process`,
    `- server CPU from /proc/<pid>/stat (clock tick ${fmt(1000 / CLK_TCK, 0)} ms), client CPU from process.cpuUsage()`,
    ...(warning ? [`- WARNING: ${warning}`] : []),
    '',
    ...section('A new connection each round (cold: a viewer opening a series)', r.cold, 'from connecting'),
    ...section('One connection, round after round (warm)', r.warm, 'from the request'),
    `## A fresh client process, its first round (bench/stream-once.mjs, medians of ${r.fresh.ds.length})`,
    '',
    '| metric | dicomstream | bare ws | dicomstream / bare ws |',
    '|---|---:|---:|---:|',
    `| throughput, MiB/s of frame bytes | ${fmt(freshRate(r.fresh.ds))} | ${fmt(freshRate(r.fresh.bare))} | ${fmt(freshRate(r.fresh.ds) / freshRate(r.fresh.bare), 2)} |`,
    `| time to first frame, ms (from connecting) | ${fmt(freshTtff(r.fresh.ds), 2)} | ${fmt(freshTtff(r.fresh.bare), 2)} | ${fmt(freshTtff(r.fresh.ds) / freshTtff(r.fresh.bare), 2)} |`,
    '',
    `Rounds, MiB/s: dicomstream ${r.fresh.ds.map((x) => fmt(x.mibPerS)).join(', ')}; bare ws ${r.fresh.bare.map((x) => fmt(x.mibPerS)).join(', ')}.`,
    '',
    `## A cold series (a new server process each time, from its saved index; ${r.coldSeries.openMs.length} runs)`,
    '',
    `- open the series: p50 ${fmt(median(r.coldSeries.openMs), 2)} ms (${r.coldSeries.openMs.map((x) => fmt(x, 1)).join(', ')})`,
    `- its first frame, from the request: p50 ${fmt(median(r.coldSeries.firstFrameMs), 2)} ms (${r.coldSeries.firstFrameMs.map((x) => fmt(x, 1)).join(', ')})`,
    '',
    checks('dicomstream, cold', r.cold.ds.check),
    checks('bare ws, cold', r.cold.bare.check),
    checks('dicomstream, warm', r.warm.ds.check),
    checks('bare ws, warm', r.warm.bare.check),
    checks('dicomstream, fresh process', freshCheck(r.fresh.ds)),
    checks('bare ws, fresh process', freshCheck(r.fresh.bare)),
    '',
  ].join('\n');
}

/** Set once a signal asked this process to stop: the aborted fetches' errors are then expected. */
let interrupted = false;

/** Alternating rounds of two sets of fetchers, after one warm-up round of each (checked, not timed). */
async function alternate(a: { fetchers: Fetcher[]; pid: number }, b: { fetchers: Fetcher[]; pid: number }, expected: Expected, label: string): Promise<{ ds: Summary; bare: Summary }> {
  const warmA = await measureRound(a.fetchers, expected, a.pid);
  const warmB = await measureRound(b.fetchers, expected, b.pid);
  const ra: Round[] = [];
  const rb: Round[] = [];
  for (let i = 0; i < MEASURED_RUNS; i++) {
    ra.push(await measureRound(a.fetchers, expected, a.pid));
    rb.push(await measureRound(b.fetchers, expected, b.pid));
    console.log(`${label} round ${i + 1}/${MEASURED_RUNS}: dicomstream ${fmt(ra.at(-1)!.wallMs, 0)} ms, bare ws ${fmt(rb.at(-1)!.wallMs, 0)} ms`);
  }
  const ds = summarise(ra);
  const bare = summarise(rb);
  ds.check = addChecks(ds.check, warmA.check);
  bare.check = addChecks(bare.check, warmB.check);
  return { ds, bare };
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.generate) ensureSeries(options.seriesDir);
  const root = join(options.seriesDir, 'uncompressed');
  if (!existsSync(root)) throw new BenchError(`no uncompressed/ folder in ${options.seriesDir}`);
  const manifestFile = readSeriesManifest(options.seriesDir);
  const buildWarning = ensureBuild();
  ({ connect } = await builtClient());
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
    const server = startServerProcess('dicomstream', [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', ...options.serverArgs]);
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

    // Warm: the same connections round after round (their warm-up round is the servers' first).
    const warm = await alternate(
      { fetchers: clients.map((c) => dicomstreamFetcher(c, expected.addresses)), pid: server.pid },
      { fetchers: sockets.map((ws) => bareFetcher(ws, uids)), pid: bare.pid }, expected, 'warm');
    // Cold: a new connection each round, to servers that have served earlier rounds.
    const cold = await alternate(
      { fetchers: clients.map(() => coldDicomstreamFetcher(url, seriesUid, expected.addresses)), pid: server.pid },
      { fetchers: sockets.map(() => coldBareFetcher(bareUrl, uids)), pid: bare.pid }, expected, 'cold');
    // A fresh client process's first round, alternating.
    const fresh: Results['fresh'] = { ds: [], bare: [] };
    for (let i = 0; i < MEASURED_RUNS; i++) {
      fresh.ds.push(await fetchOnce(['dicomstream', url, seriesUid], expected, uids));
      fresh.bare.push(await fetchOnce(['bare', bareUrl, String(uids.length)], expected, uids));
      console.log(`fresh process ${i + 1}/${MEASURED_RUNS}: dicomstream ${fmt(fresh.ds.at(-1)!.mibPerS)} MiB/s, bare ws ${fmt(fresh.bare.at(-1)!.mibPerS)} MiB/s`);
    }
    // The cold series last: its servers start from the saved index the first server wrote.
    const coldSeriesResult = await coldSeries(root, seriesUid, expected.addresses[Math.floor(uids.length / 2)]!, MEASURED_RUNS, options.serverArgs);
    const results: Results = { cold, warm, fresh, coldSeries: coldSeriesResult };
    const text = report(options, instances.length, frameBytes, hashed, results, buildWarning);
    console.log('\n' + text);
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'stream-results.md'), text);
    console.log(`written to ${relative(process.cwd(), join(OUT, 'stream-results.md'))}`);
    const all = [cold.ds.check, cold.bare.check, warm.ds.check, warm.bare.check, ...fresh.ds.map((x) => x.check), ...fresh.bare.map((x) => x.check)];
    const clean = all.every(isClean);
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
