// Index benchmark: on a tree of 10,000 small DICOM files (the project's own writer), the cold
// indexing rate of `dicomstream index` in the main thread, with one and with two parser workers;
// then the time from starting `dicomstream serve` to the first frame received, from the saved
// index, as a replica from a shared index read-only, and from a cold scan; and the server's memory
// after that first frame.
// Run from the project root: `npm run bench:index [-- --files N] [-- --rounds N]`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { writeTree } from '../server/sample/tree.js';
import { BenchError, CLI, Closer, OUT, PROJECT, builtClient, ensureBuild, fmt, median, nproc, processPeakRss, startServerProcess } from './common.js';

const { values } = parseArgs({ options: { files: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '3' } } });
const FILES = Number(values.files);
const ROUNDS = Number(values.rounds);
if (!(FILES > 0) || !(ROUNDS > 0)) throw new BenchError('--files and --rounds must be positive numbers');
const TREE = join(OUT, `index-tree-${FILES}`);
const INDEX = join(TREE, '.dicomstream');
/** The index a replica serves read-only, written apart from the archive by `dicomstream index --index-dir`. */
const SHARED_INDEX = join(OUT, `index-shared-${FILES}`);

function ensureTree(): void {
  const marker = join(TREE, '.complete');
  if (existsSync(marker)) return;
  rmSync(TREE, { recursive: true, force: true });
  mkdirSync(TREE, { recursive: true });
  const t0 = performance.now();
  writeTree(TREE, FILES, { perSeries: 50, seriesPerStudy: 4, salt: 'bench' });
  writeFileSync(marker, '');
  console.log(`wrote ${FILES} files (64×64 16-bit, 50 per series, 4 series per study) into ${relative(PROJECT, TREE)} in ${fmt((performance.now() - t0) / 1000)} s`);
}

/** `dicomstream index` from nothing: wall time of the whole command, and its own files/s line. */
function coldIndex(workers: number): { seconds: number; rate: number } {
  rmSync(INDEX, { recursive: true, force: true });
  const t0 = performance.now();
  const run = spawnSync(process.execPath, [CLI, 'index', TREE, '--parse-workers', String(workers)], { encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  if (run.status !== 0) throw new BenchError(`dicomstream index failed (exit ${run.status}): ${run.stderr}`);
  if (!new RegExp(`${FILES} parsed`).test(run.stdout)) throw new BenchError(`dicomstream index did not parse ${FILES} files: ${run.stdout}`);
  return { seconds, rate: FILES / seconds };
}

type Start = 'saved' | 'cold' | 'replica';

/**
 * Starts `dicomstream serve` and times spawn → first frame received by a client; then its RSS.
 * saved: from the index in the tree (checked against the files); cold: no index; replica: the
 * shared index read-only (`--index-dir SHARED --read-only-index`: the tree is not walked).
 */
async function firstFrame(start: Start, closer: Closer): Promise<{ ms: number; rssMiB: number }> {
  if (start === 'cold') rmSync(INDEX, { recursive: true, force: true });
  const t0 = performance.now();
  const extra = start === 'replica' ? ['--index-dir', SHARED_INDEX, '--read-only-index'] : [];
  const server = startServerProcess('dicomstream', [CLI, 'serve', TREE, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--no-watch', ...extra],
    undefined, { echo: () => false });
  closer.add(() => server.stop());
  try {
    const url = await server.url;
    const client = await connect(url, { WebSocket });
    const [study] = await client.listStudies();
    const series = await client.openSeries(study!.series[0]!.seriesInstanceUid);
    const frame = await client.getFrame(series.instances[0]!.sopInstanceUid, 1);
    const ms = performance.now() - t0;
    if (frame.bytes.length !== 64 * 64 * 2) throw new BenchError(`first frame has ${frame.bytes.length} bytes`);
    client.close();
    const rssMiB = processPeakRss(server.pid) / 1048576;
    return { ms, rssMiB };
  } finally {
    await server.stop();
  }
}

/** The built client (dist/), loaded once the build is checked. */
let connect: Awaited<ReturnType<typeof builtClient>>['connect'];

async function main(): Promise<void> {
  ensureBuild();
  ({ connect } = await builtClient());
  ensureTree();
  const closer = new Closer();
  try {
    console.log(`cold indexing, ${ROUNDS} round(s) each, alternating:`);
    const cold: Record<number, number[]> = { 0: [], 1: [], 2: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const workers of [0, 1, 2]) {
        const r = coldIndex(workers);
        cold[workers]!.push(r.seconds);
        console.log(`  round ${round + 1}: ${workers} worker(s): ${fmt(r.seconds, 2)} s, ${Math.round(r.rate)} files/s`);
      }
    }
    console.log(`start to first frame, ${ROUNDS} round(s) each, alternating:`);
    const warm: number[] = [];
    const scan: number[] = [];
    const replica: number[] = [];
    const rss = { warm: [] as number[], scan: [] as number[], replica: [] as number[] };
    coldIndex(2); // a saved index to start from
    rmSync(SHARED_INDEX, { recursive: true, force: true });
    const shared = spawnSync(process.execPath, [CLI, 'index', TREE, '--index-dir', SHARED_INDEX], { encoding: 'utf8' });
    if (shared.status !== 0) throw new BenchError(`dicomstream index --index-dir failed (exit ${shared.status}): ${shared.stderr}`);
    for (let round = 0; round < ROUNDS; round++) {
      const w = await firstFrame('saved', closer);
      warm.push(w.ms);
      rss.warm.push(w.rssMiB);
      const r = await firstFrame('replica', closer);
      replica.push(r.ms);
      rss.replica.push(r.rssMiB);
      const s = await firstFrame('cold', closer);
      scan.push(s.ms);
      rss.scan.push(s.rssMiB);
      console.log(`  round ${round + 1}: saved index ${fmt(w.ms, 0)} ms (${fmt(w.rssMiB, 0)} MiB), replica ${fmt(r.ms, 0)} ms (${fmt(r.rssMiB, 0)} MiB), cold scan ${fmt(s.ms, 0)} ms (${fmt(s.rssMiB, 0)} MiB)`);
      // The cold start saved the index again: the next warm start uses it.
    }
    const rate = (w: number) => FILES / median(cold[w]!);
    const lines = [
      `# dicomstream index benchmark`,
      ``,
      `- date: ${new Date().toISOString()}; Node ${process.version}; nproc ${nproc()}`,
      `- tree: ${FILES} files of 64×64 16-bit (about 8.5 KB each), ${FILES / 50} series of 50, 4 series per study, in ${relative(PROJECT, TREE)}`,
      `- cold indexing: \`dicomstream index TREE --parse-workers N\` as a new process, index folder deleted first; wall time of the command (Node start included); median of ${ROUNDS}`,
      `- start to first frame: spawn of \`dicomstream serve TREE --no-watch\` (replica: with \`--index-dir SHARED --read-only-index\`, SHARED written by \`dicomstream index TREE --index-dir SHARED\`) to the first frame received by a client (connect, listStudies, openSeries, getFrame); median of ${ROUNDS}; RSS is the server's peak after that frame`,
      ``,
      `| measure | main thread only | 1 worker | 2 workers (both cores) | 2 workers / main thread |`,
      `|---|---:|---:|---:|---:|`,
      `| cold indexing, files/s | ${Math.round(rate(0))} | ${Math.round(rate(1))} | ${Math.round(rate(2))} | ${fmt(rate(2) / rate(0), 2)} |`,
      `| cold indexing, s | ${fmt(median(cold[0]!), 2)} | ${fmt(median(cold[1]!), 2)} | ${fmt(median(cold[2]!), 2)} | |`,
      ``,
      `| measure | from the saved index | replica (shared index, read-only) | cold scan (no index) | saved / cold | replica / cold |`,
      `|---|---:|---:|---:|---:|---:|`,
      `| start to first frame, ms | ${fmt(median(warm), 0)} | ${fmt(median(replica), 0)} | ${fmt(median(scan), 0)} | ${fmt(median(warm) / median(scan), 2)} | ${fmt(median(replica) / median(scan), 2)} |`,
      `| server peak RSS, MiB | ${fmt(median(rss.warm), 0)} | ${fmt(median(rss.replica), 0)} | ${fmt(median(rss.scan), 0)} | ${fmt(median(rss.warm) / median(rss.scan), 2)} | ${fmt(median(rss.replica) / median(rss.scan), 2)} |`,
      ``,
      `Rounds, s: main thread ${cold[0]!.map((x) => fmt(x, 2)).join(', ')}; 1 worker ${cold[1]!.map((x) => fmt(x, 2)).join(', ')}; 2 workers ${cold[2]!.map((x) => fmt(x, 2)).join(', ')}.`,
      `Rounds, first frame ms: saved index ${warm.map((x) => fmt(x, 0)).join(', ')}; replica ${replica.map((x) => fmt(x, 0)).join(', ')}; cold scan ${scan.map((x) => fmt(x, 0)).join(', ')}.`,
    ];
    const report = lines.join('\n') + '\n';
    console.log('\n' + report);
    writeFileSync(join(OUT, 'index-results.md'), report);
    console.log(`written to ${relative(PROJECT, join(OUT, 'index-results.md'))}`);
  } finally {
    await closer.closeAll();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof BenchError ? `bench:index: ${e.message}` : e);
  process.exit(1);
});
