// Fuzzes the indexer with seeded mutants of the conformance corpus, and proves its contract holds
// on damaged and hostile files: indexBytes either indexes a file, with at least one frame and every
// frame's bytes inside the file, or rejects with an IndexError of a known code and a reason; no
// other exception escapes, no mutant takes more than 2 s, and memory stays under 512 MiB. The
// mutants (bit flips, overwritten bytes, truncations, lying length fields, undefined lengths,
// deeply nested sequences, broken fragment and offset tables, preamble damage, spliced files,
// extreme image attributes, oversized elements) are rebuilt exactly from the seed: FUZZ_SEED=n and
// FUZZ_MUTANTS=n override it and the count, FUZZ_VERBOSE=1 lists the commonest rejection reasons.
// The loop runs on a worker thread that this one watches, so even a synchronous hang fails the
// test (naming the mutant) instead of stalling the run. The regression cases are the smallest
// inputs of the bugs found, built here, each beside a valid neighbour where a bound was added.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { constants, deflateRawSync } from 'node:zlib';
import type { CaseOutcome, FuzzJob, FuzzStats, Violation } from './helpers/fuzz-worker.js';
import { concat, header, loadCorpus, makeMutant } from './helpers/mutate.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1d9c) >>> 0;
const MUTANTS = Number(process.env.FUZZ_MUTANTS ?? 10_000);
// What a pathological parse (quadratic, or unbounded work) would exceed many times over; the
// largest legitimate case, inflating 256 MiB before refusing a bigger data set, takes 1-2 s on a
// busy 2-core machine.
const TIME_LIMIT_MS = 5000;
const MEMORY_LIMIT_BYTES = 512 * 2 ** 20;
/** The watchdog's bound: the worker's own timer reports slow mutants; this catches one that never yields. */
const HANG_MS = TIME_LIMIT_MS + 3000;

const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

/**
 * Runs a job on the fuzz worker and watches it: a mutant still running after HANG_MS, a worker
 * that dies (out of memory) or exits early fails the run, naming the mutant.
 */
function runWorker(job: Omit<FuzzJob, 'heartbeat'>): Promise<{ stats: FuzzStats; violations: Violation[] }> {
  const heartbeat = new SharedArrayBuffer(16);
  const beat = new Float64Array(heartbeat);
  beat[0] = -1;
  const workerUrl = new URL('./helpers/fuzz-worker.ts', import.meta.url).href;
  // As ParsePool does from sources: register tsx's loader in the worker, then load the module.
  const worker = new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(workerUrl)}); })`, {
    eval: true,
    workerData: { ...job, heartbeat } satisfies FuzzJob,
    // A hard stop above the sampled bound, so a runaway allocation fails the test, not the machine.
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
  });
  const violations: Violation[] = [];
  /** The input being indexed (or the last one started), rebuilt from the seed and saved for a look. */
  const current = (): string => {
    const index = beat[0]!;
    if (index < 0) return 'before the first input';
    const when = beat[1]! > 0 ? 'on' : 'after';
    if (job.cases) return `${when} regression case "${job.cases[index]?.name}"`;
    const m = makeMutant(job.seed, index, loadCorpus());
    const saved = join(tmpdir(), `fuzz-index-${job.seed}-${index}.dcm`);
    writeFileSync(saved, m.bytes);
    return `${when} mutant ${index} (seed ${job.seed}) of ${m.file}, ${m.kind}: ${m.note}; saved to ${saved}`;
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error, stats?: FuzzStats) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      void worker.terminate();
      if (error) reject(error);
      else resolve({ stats: stats!, violations });
    };
    const watchdog = setInterval(() => {
      const started = beat[1]!;
      if (started > 0 && Date.now() - started > HANG_MS) finish(new Error(`indexBytes hung for over ${HANG_MS} ms ${current()}`));
    }, 100);
    worker.on('message', (m: { type: 'violation'; violation: Violation } | { type: 'done'; stats: FuzzStats } | { type: 'failed'; message: string }) => {
      if (m.type === 'violation') violations.push(m.violation);
      else if (m.type === 'done') finish(undefined, m.stats);
      else finish(new Error(`the fuzz worker failed: ${m.message}`));
    });
    worker.on('error', (e) => finish(new Error(`the fuzz worker died (${e.message}) ${current()}`)));
    worker.on('exit', (code) => finish(new Error(`the fuzz worker exited (${code}) ${current()}`)));
  });
}

function describeViolations(violations: Violation[], total: number): string {
  return `${total} contract violation(s):\n${violations.map((v) => `  #${v.index} ${v.file} [${v.kind}: ${v.note}]: ${v.problem}${v.saved ? ` (saved to ${v.saved})` : ''}`).join('\n')}`;
}

// ---------------------------------------------------------------- hand-built inputs

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const EXPLICIT_LE = { explicit: true, littleEndian: true };
const element = (tag: number, vr: string, value: Uint8Array): Uint8Array => concat(header(tag, vr, value.length, EXPLICIT_LE), value);
const uid = (s: string): Uint8Array => ascii(s.length % 2 ? `${s}\0` : s);
const is = (n: number): Uint8Array => ascii(String(n).length % 2 ? `${n} ` : String(n));
const us = (n: number): Uint8Array => Uint8Array.of(n & 0xff, n >> 8);
const item = (length: number): Uint8Array => header(0xfffee000, '', length, { explicit: false, littleEndian: true });
const UNDEFINED = 0xffffffff;
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const DEFLATED = '1.2.840.10008.1.2.1.99';

/** Preamble, DICM and a file meta naming the transfer syntax, then `body` as it is. */
function part10(transferSyntax: string, ...body: Uint8Array[]): Uint8Array {
  const meta = element(0x00020010, 'UI', uid(transferSyntax));
  return concat(new Uint8Array(128), ascii('DICM'), element(0x00020000, 'UL', Uint8Array.of(meta.length, 0, 0, 0)), meta, ...body);
}

/** SOP Instance UID and an image module of `frames` frames of rows × columns at `bits` bits. */
const imageModule = (rows: number, columns: number, bits: number, frames: number): Uint8Array => concat(
  element(0x00080018, 'UI', uid('1.2.826.0.1.3680043.2.1143.1')), element(0x00280002, 'US', us(1)), element(0x00280008, 'IS', is(frames)),
  element(0x00280010, 'US', us(rows)), element(0x00280011, 'US', us(columns)), element(0x00280100, 'US', us(bits)),
);

/** A deflated file whose data set inflates to `mib` MiB (its Pixel Data zeros), built from flushed blocks. */
function deflatedZeros(mib: number): Uint8Array {
  const head = concat(imageModule(1024, 1024, 8, mib), header(0x7fe00010, 'OB', mib * 2 ** 20, EXPLICIT_LE));
  // A full flush ends each piece on a byte with no reference back: pieces of zeros concatenate.
  const flushed = { finishFlush: constants.Z_FULL_FLUSH };
  const oneMib = deflateRawSync(new Uint8Array(2 ** 20), flushed);
  const parts = [deflateRawSync(head, flushed)];
  for (let i = 0; i < mib; i++) parts.push(oneMib);
  parts.push(deflateRawSync(new Uint8Array(0)));
  return part10(DEFLATED, ...parts);
}

/**
 * The smallest inputs of the bugs the fuzzer (and the probes it prompted) found, and the outcome
 * each must have now; the last two are their valid neighbours, which must still index.
 */
const REGRESSIONS: Array<{ name: string; bytes: () => Uint8Array; outcome: string; frames?: number }> = [
  {
    // dicom-parser pushed a warning to a missing array: a TypeError relabelled CORRUPT.
    name: 'explicit VR sequence of undefined length cut off by the end of the file',
    bytes: () => part10(EXPLICIT_VR_LITTLE_ENDIAN, element(0x00080018, 'UI', uid('1.2.3')),
      header(0x00081140, 'SQ', UNDEFINED, EXPLICIT_LE), item(UNDEFINED), element(0x00081150, 'UI', uid('1.2.840.10008.5.1.4.1.1.2'))),
    outcome: 'NO_PIXEL_DATA',
  },
  {
    // The same inside a defined-length item, whose data set dicom-parser makes without the array.
    name: 'undefined-length sequence inside a defined-length item, cut off by the end of the file',
    bytes: () => {
      const inner = concat(header(0x00400275, 'SQ', UNDEFINED, EXPLICIT_LE), item(UNDEFINED), element(0x00400009, 'SH', ascii('SPS1')));
      const outerItem = concat(item(inner.length), inner);
      return part10(EXPLICIT_VR_LITTLE_ENDIAN, element(0x00080018, 'UI', uid('1.2.3')), header(0x00081140, 'SQ', outerItem.length, EXPLICIT_LE), outerItem);
    },
    outcome: 'NO_PIXEL_DATA',
  },
  {
    // Read outside readDataSet's try: a thrown string ("attempt to read past end of buffer") escaped it.
    name: 'Transfer Syntax UID whose length runs past the end of the file',
    bytes: () => concat(new Uint8Array(128), ascii('DICM'), header(0x00020010, 'UI', 0x7fff, EXPLICIT_LE), uid(EXPLICIT_VR_LITTLE_ENDIAN)),
    outcome: 'NOT_DICOM',
  },
  {
    // dicom-parser calls its warnings array as a function there: a TypeError relabelled CORRUPT.
    name: 'undefined-length OB ended by an item delimiter with a non-zero length',
    bytes: () => part10(EXPLICIT_VR_LITTLE_ENDIAN, element(0x00080018, 'UI', uid('1.2.3')), header(0x00091010, 'OB', UNDEFINED, EXPLICIT_LE),
      ascii('ab'), Uint8Array.of(0xfe, 0xff, 0x0d, 0xe0, 4, 0, 0, 0)),
    outcome: 'CORRUPT',
  },
  {
    // dicom-parser recurses once per level: the stack overflow (a RangeError) was relabelled CORRUPT.
    name: '20,000 nested sequences of undefined length',
    bytes: () => {
      const level = concat(header(0x00081140, 'SQ', UNDEFINED, EXPLICIT_LE), item(UNDEFINED));
      const levels = new Uint8Array(level.length * 20_000);
      for (let i = 0; i < 20_000; i++) levels.set(level, i * level.length);
      return part10(EXPLICIT_VR_LITTLE_ENDIAN, element(0x00080018, 'UI', uid('1.2.3')), levels);
    },
    outcome: 'CORRUPT',
  },
  {
    // 8,388,608 frame entries for a 1 MiB file: 1 GiB of memory and 5 s.
    name: '1 MiB of 1-bit 1×1 frames (8,388,608 of them)',
    bytes: () => part10(EXPLICIT_VR_LITTLE_ENDIAN, imageModule(1, 1, 1, 8 * 2 ** 20), header(0x7fe00010, 'OB', 2 ** 20, EXPLICIT_LE), new Uint8Array(2 ** 20)),
    outcome: 'UNSUPPORTED',
  },
  {
    // A 270 KiB file inflated without bound (and was copied once more): 2 GiB of memory for 512 MiB.
    name: 'deflated data set inflating to 257 MiB',
    bytes: () => deflatedZeros(257),
    outcome: 'UNSUPPORTED',
  },
  {
    name: 'valid neighbour: 4096 1-bit 1×1 frames',
    bytes: () => part10(EXPLICIT_VR_LITTLE_ENDIAN, imageModule(1, 1, 1, 4096), header(0x7fe00010, 'OB', 512, EXPLICIT_LE), new Uint8Array(512)),
    outcome: 'indexed',
    frames: 4096,
  },
  {
    name: 'valid neighbour: deflated data set inflating to 4 MiB',
    bytes: () => deflatedZeros(4),
    outcome: 'indexed',
    frames: 4,
  },
];

describe('indexer fuzz regressions', () => {
  let outcomes: CaseOutcome[] = [];
  let violations: Violation[] = [];
  let violationCount = 0;
  before(async () => {
    // Through the worker too: a regression that hangs must fail, not stall the run.
    const cases = REGRESSIONS.map((r) => ({ name: r.name, bytes: r.bytes() }));
    const run = await runWorker({ seed: 0, mutants: 0, cases, timeLimitMs: TIME_LIMIT_MS, memoryLimitBytes: MEMORY_LIMIT_BYTES, sampleEvery: 1 });
    outcomes = run.stats.cases;
    violations = run.violations;
    violationCount = run.stats.violations;
  });
  for (const r of REGRESSIONS) {
    it(`${r.name}: ${r.outcome}${r.frames ? ` (${r.frames} frames)` : ''}`, () => {
      const o = outcomes.find((x) => x.name === r.name);
      assert.ok(o, 'checked');
      const mine = violations.filter((v) => v.note === r.name);
      assert.deepEqual(mine.map((v) => v.problem), [], 'keeps the contract');
      assert.equal(o.outcome, r.outcome, o.message);
      if (r.frames !== undefined) assert.equal(o.frames, r.frames);
    });
  }
  it('no contract violation among them', () => assert.equal(violationCount, 0, describeViolations(violations, violationCount)));
});

describe('indexer fuzz', () => {
  it(`${MUTANTS} seeded mutants of the corpus keep the indexBytes contract`, async () => {
    const started = performance.now();
    console.log(`fuzz-index: seed ${SEED} (0x${SEED.toString(16)}), ${MUTANTS} mutants`);
    const { stats, violations } = await runWorker({ seed: SEED, mutants: MUTANTS, timeLimitMs: TIME_LIMIT_MS, memoryLimitBytes: MEMORY_LIMIT_BYTES, sampleEvery: 10 });
    const seconds = (performance.now() - started) / 1000;
    console.log(`fuzz-index: ${stats.tried} mutants in ${seconds.toFixed(1)} s (${stats.totalIndexMs.toFixed(0)} ms in indexBytes)`);
    console.log(`fuzz-index: outcomes ${JSON.stringify(stats.outcomes)}`);
    console.log(`fuzz-index: by mutation (tried/indexed) ${Object.entries(stats.byKind).map(([k, v]) => `${k} ${v.tried}/${v.indexed}`).join(', ')}`);
    console.log(`fuzz-index: slowest ${stats.slowest.ms.toFixed(1)} ms: mutant ${stats.slowest.index} of ${stats.slowest.file}, ${stats.slowest.kind}: ${stats.slowest.note}`);
    console.log(`fuzz-index: peak heapUsed+arrayBuffers ${MiB(stats.peakMemoryBytes)} over ${stats.memorySamples} samples (bound ${MiB(MEMORY_LIMIT_BYTES)})`);
    if (process.env.FUZZ_VERBOSE) for (const m of stats.topMessages) console.log(`fuzz-index:   ${m.count} × ${m.code}: ${m.message}`);
    assert.equal(stats.tried, MUTANTS);
    assert.equal(stats.violations, 0, describeViolations(violations, stats.violations));
    assert.ok(stats.peakMemoryBytes < MEMORY_LIMIT_BYTES);
    assert.ok(stats.slowest.ms <= TIME_LIMIT_MS);
    // A mutator that never leaves a servable file, or never a broken one, tests little.
    assert.ok((stats.outcomes.indexed ?? 0) > MUTANTS / 20, 'some mutants still index');
    assert.ok(stats.tried - (stats.outcomes.indexed ?? 0) > MUTANTS / 5, 'many mutants are rejected');
  });
});
