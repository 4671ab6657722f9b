// WADO-RS frames under a load generator that takes almost none of the CPU the servers share with
// it: wrk (Debian `wrk`, written in C, one thread). The Node clients of bench:peers spend 2-4 ms of
// CPU on a 512 KiB frame on the same two cores, so what they measure is mostly themselves; wrk
// spends a tenth of that. Each connection sends one GET .../frames/1 at a time, the connections
// together walking the series' 200 frames over and over; wrk times each answer from the request.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { MIB, fmt, machineCpu, median, processCpu, processPeakRss, resetPeakRss } from './common.js';

/** A server under load: its process, its port and the path of every frame to ask for, in order. */
export interface LoadTarget { name: string; pid: number; port: number; paths: string[] }

export interface LoadOptions {
  wrk: string;
  /** A folder for the script and the path list. */
  dir: string;
  accept: string;
  /** Bytes of one frame: each answer must carry at least this many. */
  frameBytes: number;
  connections: number[];
  rounds: number;
  seconds: number;
  warmupSeconds: number;
}

/** One wrk run: what its done() printed, and the CPU the server and wrk spent meanwhile. */
interface LoadRun {
  requests: number; bytes: number; seconds: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number;
  serverCpuMs: number; wrkCpuMs: number; serverPeakRssBytes: number;
  /** CPU time the hypervisor gave other machines while this ran (steal, all cores), in ms. */
  stealMs: number;
}

const RESULT_MARK = 'DICOMSTREAM_WRK ';

// Percentiles and counts as JSON on one marked line; wrk's latency figures are in microseconds.
const SCRIPT = `
local paths = {}
for line in io.lines(os.getenv("DICOMSTREAM_WRK_PATHS")) do paths[#paths + 1] = line end
local next_path = 0
wrk.headers["Accept"] = os.getenv("DICOMSTREAM_WRK_ACCEPT")
request = function()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${RESULT_MARK}{"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;

/** wrk's path if it runs here, else undefined. */
export function findWrk(): string | undefined {
  const probe = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  // wrk --version prints `wrk <version> [epoll] …` and its usage, and exits 1.
  return !probe.error && /^wrk \S+ \[/m.test(probe.stdout + probe.stderr) ? 'wrk' : undefined;
}

export function wrkVersion(wrk: string): string {
  const probe = spawnSync(wrk, ['--version'], { encoding: 'utf8' });
  return /^(wrk \S+) \[/m.exec(probe.stdout + probe.stderr)?.[1] ?? 'wrk';
}

/** The script wrk runs, and a target's frame paths (written once, in loadBlocks). */
const scriptFile = (options: LoadOptions) => join(options.dir, 'frames.lua');
const pathsFile = (options: LoadOptions, target: LoadTarget) => join(options.dir, `paths-${target.port}.txt`);

async function runWrk(options: LoadOptions, target: LoadTarget, connections: number, seconds: number): Promise<LoadRun> {
  const args = ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--timeout', '30s', '-s', scriptFile(options), `http://127.0.0.1:${target.port}`];
  const serverBefore = processCpu(target.pid);
  const wrkBefore = processCpu(process.pid).childrenMs;
  const stealBefore = machineCpu().stealMs;
  const child = spawn(options.wrk, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DICOMSTREAM_WRK_PATHS: pathsFile(options, target), DICOMSTREAM_WRK_ACCEPT: options.accept } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { out += s; });
  const code = await new Promise<number>((ok, fail) => { child.once('error', fail); child.once('close', (c) => ok(c ?? 1)); });
  const serverAfter = processCpu(target.pid);
  const line = out.split('\n').find((l) => l.startsWith(RESULT_MARK));
  if (code !== 0 || !line) throw new Error(`wrk on ${target.name} exited ${code}: ${out.trim().slice(0, 500)}`);
  const r = JSON.parse(line.slice(RESULT_MARK.length)) as Record<string, number>;
  const n = (key: string): number => r[key] ?? Number.NaN;
  return {
    requests: n('requests'), bytes: n('bytes'), seconds: n('duration_us') / 1e6,
    errors: { connect: n('connect'), read: n('read'), write: n('write'), status: n('status'), timeout: n('timeout') },
    p50Ms: n('p50_us') / 1000, p90Ms: n('p90_us') / 1000, p99Ms: n('p99_us') / 1000, maxMs: n('max_us') / 1000,
    serverCpuMs: serverAfter.userMs + serverAfter.systemMs - serverBefore.userMs - serverBefore.systemMs,
    wrkCpuMs: processCpu(process.pid).childrenMs - wrkBefore,
    serverPeakRssBytes: processPeakRss(target.pid),
    stealMs: machineCpu().stealMs - stealBefore,
  };
}

/** Why a run's answers cannot be counted (errors, or answers shorter than a frame), or undefined. */
function problem(run: LoadRun, frameBytes: number): string | undefined {
  const errors = Object.entries(run.errors).filter(([, v]) => v !== 0).map(([k, v]) => `${v} ${k}`);
  if (errors.length > 0) return `wrk counted errors: ${errors.join(', ')}`;
  if (run.requests === 0) return 'no answer';
  if (run.bytes / run.requests < frameBytes) return `answers of ${fmt(run.bytes / run.requests, 0)} bytes on average, less than a frame (${frameBytes})`;
  return undefined;
}

interface Figures { stealPercent: number; mibPerS: number; framesPerS: number; p50Ms: number; p90Ms: number; p99Ms: number; serverCpuMs: number; wrkCpuMs: number; peakRssMib: number; runsFramesPerS: number[]; runsP99Ms: number[] }

function figures(runs: LoadRun[], frameBytes: number): Figures {
  const perS = (r: LoadRun) => r.requests / r.seconds;
  return {
    mibPerS: median(runs.map((r) => perS(r) * frameBytes / MIB)),
    framesPerS: median(runs.map(perS)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p90Ms: median(runs.map((r) => r.p90Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    serverCpuMs: median(runs.map((r) => r.serverCpuMs / r.requests)),
    wrkCpuMs: median(runs.map((r) => r.wrkCpuMs / r.requests)),
    peakRssMib: Math.max(...runs.map((r) => r.serverPeakRssBytes)) / MIB,
    runsFramesPerS: runs.map(perS),
    runsP99Ms: runs.map((r) => r.p99Ms),
    stealPercent: median(runs.map((r) => r.stealMs / (r.seconds * 1000 * availableParallelism()) * 100)),
  };
}

/**
 * Every target at every connection count: a warm-up run, then `rounds` runs of each, alternating
 * targets so that a slow minute of the machine hits all of them. Returns the Markdown section,
 * and whether every run was clean.
 */
export async function loadBlocks(targets: LoadTarget[], options: LoadOptions, log: (line: string) => void): Promise<{ text: string; clean: boolean }> {
  writeFileSync(scriptFile(options), SCRIPT);
  for (const target of targets) writeFileSync(pathsFile(options, target), target.paths.join('\n') + '\n');
  const sections: string[] = [];
  let clean = true;
  for (const connections of options.connections) {
    const runs = new Map<string, LoadRun[]>(targets.map((t) => [t.name, []]));
    const failures = new Map<string, string>();
    for (let round = 0; round <= options.rounds; round++) {
      const times: string[] = [];
      for (const target of targets) {
        if (failures.has(target.name)) continue;
        if (round === 0) resetPeakRss(target.pid);
        try {
          const run = await runWrk(options, target, connections, round === 0 ? options.warmupSeconds : options.seconds);
          const wrong = problem(run, options.frameBytes);
          if (wrong) throw new Error(wrong);
          if (round > 0) runs.get(target.name)!.push(run);
          times.push(`${target.name} ${fmt(run.requests / run.seconds, 0)} frames/s, p99 ${fmt(run.p99Ms, 2)} ms`);
        } catch (e) {
          failures.set(target.name, e instanceof Error ? e.message : String(e));
          clean = false;
        }
      }
      log(`  wrk, ${connections} connection(s), ${round === 0 ? 'warm-up' : `round ${round}/${options.rounds}`}: ${times.join('; ')}`);
    }
    const summary = new Map<string, Figures>();
    for (const [name, list] of runs) if (list.length > 0 && !failures.has(name)) summary.set(name, figures(list, options.frameBytes));
    sections.push(loadTable(connections, targets, summary, failures, options));
  }
  return { text: sections.join('\n'), clean };
}

function loadTable(connections: number, targets: LoadTarget[], summary: Map<string, Figures>, failures: Map<string, string>, options: LoadOptions): string {
  const rows: Array<[string, (f: Figures) => number, number, boolean?]> = [
    ['throughput, MiB/s of frame bytes', (f) => f.mibPerS, 1],
    ['frames/s', (f) => f.framesPerS, 0],
    ['latency p50, ms (request sent to answer read, by wrk)', (f) => f.p50Ms, 2],
    ['latency p90, ms', (f) => f.p90Ms, 2],
    ['latency p99, ms', (f) => f.p99Ms, 2],
    ['server CPU per frame, ms', (f) => f.serverCpuMs, 3],
    ['wrk CPU per frame, ms', (f) => f.wrkCpuMs, 3],
    ['server peak RSS, MiB', (f) => f.peakRssMib, 0],
    ['CPU taken by the hypervisor (steal), % of all cores', (f) => f.stealPercent, 1, false],
  ];
  const [orthanc, wado, bare] = ['Orthanc WADO-RS', 'dicomstream WADO-RS', 'bare Node http'].map((n) => summary.get(n));
  const ratios: Array<[string, Figures | undefined, Figures | undefined]> = [
    ['dicomstream / Orthanc', wado, orthanc], ['dicomstream / bare Node http', wado, bare],
  ];
  const names = targets.map((t) => t.name);
  const cell = (f: Figures | undefined, get: (f: Figures) => number, d: number) => f ? fmt(get(f), d) : 'failed';
  const ratio = (a: Figures | undefined, b: Figures | undefined, get: (f: Figures) => number) => a && b ? fmt(get(a) / get(b), 2) : 'n/a';
  const shownRatios = ratios.filter(([, a, b]) => a && b);
  const lines = [
    `### wrk, ${connections} connection${connections > 1 ? 's' : ''} (a ${options.warmupSeconds} s warm-up, then ${options.rounds} runs of ${options.seconds} s each, alternating)`,
    '',
    `| metric | ${[...names, ...shownRatios.map(([n]) => n)].join(' | ')} |`,
    `|---|${[...names, ...shownRatios].map(() => '---:').join('|')}|`,
    ...rows.map(([label, get, d, ratioed = true]) => `| ${label} | ${[...names.map((n) => cell(summary.get(n), get, d)), ...shownRatios.map(([, a, b]) => ratioed ? ratio(a, b, get) : '')].join(' | ')} |`),
    '',
    'Runs, frames/s and p99 ms: ' + names.map((n) => {
      const f = summary.get(n);
      return `${n} ${f ? f.runsFramesPerS.map((x, i) => `${fmt(x, 0)} (${fmt(f.runsP99Ms[i]!, 2)})`).join(', ') : '-'}`;
    }).join('; ') + '.',
    ...[...failures].map(([n, why]) => `- ${n}: FAILED: ${why}`),
    '',
  ];
  return lines.join('\n');
}
