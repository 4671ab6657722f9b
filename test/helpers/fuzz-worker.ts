// The fuzz loop of test/fuzz-index.test.ts, on a thread of its own: a parse that never returns
// (a synchronous loop) cannot be interrupted by a timer on its own thread, so the test's thread
// watches this one's heartbeat and terminates it instead. Checks every mutant against the
// indexer's contract and posts violations as they happen, then the tallies.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { IndexError, indexBytes, type IndexedFile } from '../../server/index.js';
import { loadCorpus, makeMutant } from './mutate.js';

/** The codes of the contract. */
const KNOWN_CODES = new Set(['NOT_DICOM', 'CORRUPT', 'NO_PIXEL_DATA', 'NO_UID', 'NOT_AN_IMAGE', 'TRUNCATED', 'UNSUPPORTED', 'UNREADABLE', 'GZIP']);

/**
 * Messages of JavaScript's own errors: an IndexError carrying one means the indexer crashed and the
 * crash was relabelled, not that the file was judged.
 */
const ENGINE_ERROR = /Maximum call stack|Cannot read propert|Cannot set propert|is not a function|is not iterable|is not defined|is not a constructor|Invalid array length|Invalid typed array length|Array buffer allocation failed|out of memory|Offset is outside the bounds|toString is not|Cannot convert|Cannot mix BigInt|^undefined$|^null$|\[object Object\]/;

export interface FuzzJob {
  seed: number;
  mutants: number;
  /** Regression inputs to check instead of mutants, when given. */
  cases?: Array<{ name: string; bytes: Uint8Array }>;
  timeLimitMs: number;
  memoryLimitBytes: number;
  sampleEvery: number;
  /** [index being indexed, Date.now() when it started (0: idle)] */
  heartbeat: SharedArrayBuffer;
}

export interface Violation { index: number; file: string; kind: string; note: string; problem: string; saved?: string }
export interface CaseOutcome { name: string; outcome: string; message: string; frames: number; ms: number }

export interface FuzzStats {
  tried: number;
  outcomes: Record<string, number>;
  byKind: Record<string, { tried: number; indexed: number }>;
  /** Most frequent rejection messages (digits folded), to spot a reason that hides a crash. */
  topMessages: Array<{ code: string; message: string; count: number }>;
  slowest: { ms: number; index: number; file: string; kind: string; note: string };
  totalIndexMs: number;
  peakMemoryBytes: number;
  memorySamples: number;
  violations: number;
  cases: CaseOutcome[];
}

type Settled = { file: IndexedFile } | { error: unknown } | 'timeout' | { threw: unknown };

async function settle(bytes: Uint8Array, name: string, timeLimitMs: number): Promise<{ result: Settled; ms: number }> {
  const started = performance.now();
  let promise: Promise<IndexedFile>;
  try {
    promise = indexBytes(bytes, name);
  } catch (threw) {
    return { result: { threw }, ms: performance.now() - started };
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), timeLimitMs); });
  try {
    const result = await Promise.race([promise.then((file) => ({ file }), (error: unknown) => ({ error })), timeout]);
    return { result, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** What is wrong with how the indexer treated `bytes`, if anything. */
function problemWith(result: Settled, ms: number, bytes: Uint8Array, timeLimitMs: number): string | undefined {
  if (result === 'timeout') return `did not settle within ${timeLimitMs} ms`;
  if ('threw' in result) return `indexBytes threw synchronously: ${String(result.threw)}`;
  // Synchronous work is not cut short by the timer: the elapsed time says whether it overran.
  if (ms > timeLimitMs) return `took ${ms.toFixed(0)} ms (bound ${timeLimitMs} ms)`;
  if ('error' in result) {
    const e = result.error;
    if (!(e instanceof IndexError)) return `rejected with ${(e as Error)?.constructor?.name ?? typeof e}: ${String((e as Error)?.message ?? e)}`;
    if (!KNOWN_CODES.has(e.code)) return `IndexError with unknown code ${String(e.code)}`;
    if (typeof e.message !== 'string' || e.message.trim() === '') return `IndexError ${e.code} without a message`;
    if (ENGINE_ERROR.test(e.message)) return `a crash relabelled as IndexError ${e.code}: ${e.message}`;
    return undefined;
  }
  const f = result.file;
  if (f.frames.length < 1) return 'indexed with no frames';
  if (f.frames.length !== f.image.numberOfFrames) return `${f.frames.length} frames located for Number of Frames ${f.image.numberOfFrames}`;
  for (let n = 0; n < f.frames.length; n++) {
    const { segments, length } = f.frames[n]!;
    if (segments.length === 0 || segments.length % 2 !== 0) return `frame ${n + 1}: segments ${JSON.stringify(segments)}`;
    let sum = 0;
    for (let i = 0; i < segments.length; i += 2) {
      const offset = segments[i]!, len = segments[i + 1]!;
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0) return `frame ${n + 1}: bad segment ${offset}+${len}`;
      // Frames of a deflated file are ranges of its inflated data set, which the caller never sees.
      if (f.source !== 'inflated' && offset + len > bytes.length) return `frame ${n + 1}: segment ${offset}+${len} past the end of the ${bytes.length}-byte file`;
      sum += len;
    }
    if (sum !== length) return `frame ${n + 1}: length ${length} but its segments hold ${sum}`;
  }
  return undefined;
}

const fold = (message: string): string => message.replace(/\d+/g, 'N').slice(0, 120);

async function run(job: FuzzJob): Promise<FuzzStats> {
  const beat = new Float64Array(job.heartbeat);
  const corpus = job.cases ? [] : loadCorpus();
  const stats: FuzzStats = {
    tried: 0, outcomes: {}, byKind: {}, topMessages: [], slowest: { ms: 0, index: -1, file: '', kind: '', note: '' },
    totalIndexMs: 0, peakMemoryBytes: 0, memorySamples: 0, violations: 0, cases: [],
  };
  const messages = new Map<string, { code: string; message: string; count: number }>();
  const sampleMemory = (index: number, file: string, kind: string, note: string) => {
    const m = process.memoryUsage();
    const used = m.heapUsed + m.arrayBuffers;
    stats.memorySamples++;
    if (used > stats.peakMemoryBytes) stats.peakMemoryBytes = used;
    if (used > job.memoryLimitBytes) report({ index, file, kind, note, problem: `memory ${(used / 2 ** 20).toFixed(0)} MiB over the ${(job.memoryLimitBytes / 2 ** 20).toFixed(0)} MiB bound` });
  };
  const report = (v: Violation, bytes?: Uint8Array) => {
    stats.violations++;
    if (stats.violations <= 20) {
      if (bytes && stats.violations <= 5) {
        // Keep the input for a look with other tools; the seed and index rebuild it too.
        v.saved = join(tmpdir(), `fuzz-index-${job.seed}-${v.index}.dcm`);
        try { writeFileSync(v.saved, bytes); } catch { v.saved = undefined; }
      }
      parentPort!.postMessage({ type: 'violation', violation: v });
    }
  };

  const total = job.cases?.length ?? job.mutants;
  for (let index = 0; index < total; index++) {
    const mutant = job.cases
      ? { bytes: job.cases[index]!.bytes, kind: 'regression', note: job.cases[index]!.name, file: job.cases[index]!.name }
      : makeMutant(job.seed, index, corpus);
    beat[0] = index;
    beat[1] = Date.now();
    const { result, ms } = await settle(mutant.bytes, mutant.file, job.timeLimitMs);
    beat[1] = 0;
    stats.tried++;
    stats.totalIndexMs += ms;
    if (ms > stats.slowest.ms) stats.slowest = { ms, index, file: mutant.file, kind: mutant.kind, note: mutant.note };
    const outcome = result === 'timeout' ? 'TIMEOUT' : 'file' in result ? 'indexed'
      : 'error' in result && result.error instanceof IndexError ? result.error.code : 'OTHER';
    stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1;
    const k = (stats.byKind[mutant.kind] ??= { tried: 0, indexed: 0 });
    k.tried++;
    if (outcome === 'indexed') k.indexed++;
    if (typeof result === 'object' && 'error' in result && result.error instanceof IndexError) {
      const key = `${result.error.code} ${fold(result.error.message)}`;
      const m = messages.get(key) ?? { code: result.error.code, message: fold(result.error.message), count: 0 };
      m.count++;
      messages.set(key, m);
    }
    if (job.cases) {
      const message = typeof result === 'object' && 'error' in result ? String((result.error as Error)?.message ?? result.error) : '';
      stats.cases.push({ name: mutant.note, outcome, message, frames: typeof result === 'object' && 'file' in result ? result.file.frames.length : 0, ms });
    }
    const problem = problemWith(result, ms, mutant.bytes, job.timeLimitMs);
    if (problem) report({ index, file: mutant.file, kind: mutant.kind, note: mutant.note, problem }, mutant.bytes);
    // Every Nth mutant, and every large input or index while it is still held.
    const large = mutant.bytes.length > 4 * 2 ** 20 || (typeof result === 'object' && 'file' in result && result.file.frames.length > 10_000);
    if (index % job.sampleEvery === 0 || large) sampleMemory(index, mutant.file, mutant.kind, mutant.note);
  }
  sampleMemory(total, '', 'end', '');
  stats.topMessages = [...messages.values()].sort((a, b) => b.count - a.count).slice(0, 25);
  return stats;
}

run(workerData as FuzzJob).then(
  (stats) => parentPort!.postMessage({ type: 'done', stats }),
  (e: unknown) => parentPort!.postMessage({ type: 'failed', message: (e as Error)?.stack ?? String(e) }),
);
