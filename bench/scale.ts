// Scale-out benchmark: the 200-slice CT served from a bucket of a real S3-compatible store (Ceph
// RGW, started here on 127.0.0.1) against the same files from a folder; what losing a replica
// behind HAProxy costs a client (frames asked again, time to its next frame); and 1, 2 and 3
// replicas behind HAProxy with 8 and 32 clients over three series.
// Run from the project root: `npm run bench:scale [-- --rounds N]`. Needs Debian's radosgw,
// ceph-mon, ceph-osd and haproxy (.ci/run installs them).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import WebSocket from 'ws';
import { startHaproxy, startReplica, stopReplica } from '../test/helpers/replicas.js';
import { startRgw, type Rgw } from '../test/helpers/rgw.js';
import {
  BenchError, CLI, Closer, OUT, PROJECT, builtClient, ensureBuild, ensureSeries, fmt, median, nproc, processCpu, readSeriesManifest, startServerProcess,
} from './common.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const ROUNDS = Number(values.rounds);
if (!(ROUNDS > 0)) throw new BenchError('--rounds must be a positive number');
const SERIES = join(OUT, 'series');
const BUCKET = 'bench-archive';

/** The built client (dist/), loaded once the build is checked. */
let connect: Awaited<ReturnType<typeof builtClient>>['connect'];

interface Round { mibPerS: number; firstFrameMs: number; cpuMsPerFrame: number; frames: number }

/** The CT under three more Study/Series/SOP Instance UIDs (same length, last digits changed): three series to spread over replicas. */
function seriesCopies(root: string, uids: string[]): string {
  const dir = join(OUT, 'scale-series');
  if (existsSync(join(dir, '.complete'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  for (let copy = 1; copy <= 3; copy++) {
    const into = join(dir, `copy${copy}`);
    mkdirSync(into, { recursive: true });
    for (const f of readdirSync(root).filter((name) => name.endsWith('.dcm'))) {
      let bytes: Buffer = readFileSync(join(root, f));
      for (const uid of new Set([...uids, ...sopUids(bytes)])) bytes = replaceAll(bytes, uid, uid.slice(0, -1) + String((Number(uid.at(-1)) + copy) % 10));
      writeFileSync(join(into, f), bytes);
    }
  }
  writeFileSync(join(dir, '.complete'), '');
  return dir;
}

/** The SOP Instance UID of a file (0008,0018), as written. */
function sopUids(bytes: Buffer): string[] {
  const at = bytes.indexOf(Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49]), 132);
  if (at < 0) return [];
  const length = bytes.readUInt16LE(at + 6);
  return [bytes.toString('latin1', at + 8, at + 8 + length).replace(/\0+$/, '')];
}

function replaceAll(bytes: Buffer, from: string, to: string): Buffer {
  const a = Buffer.from(from, 'latin1');
  const b = Buffer.from(to, 'latin1');
  for (let at = bytes.indexOf(a); at >= 0; at = bytes.indexOf(a, at + a.length)) b.copy(bytes, at);
  return bytes;
}

/** A new connection fetches the whole series; the server's CPU (from /proc) over the frames. */
async function round(url: string, pid: number): Promise<Round> {
  const cpu0 = processCpu(pid);
  const t0 = performance.now();
  const c = await connect(url, { WebSocket, reconnect: false });
  const [study] = await c.listStudies();
  const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
  let bytes = 0;
  let first = 0;
  let frames = 0;
  for await (const f of c.requestFrames(series.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })))) {
    if (!frames++) first = performance.now() - t0;
    bytes += f.bytes.length;
  }
  const ms = performance.now() - t0;
  c.close();
  const cpu1 = processCpu(pid);
  return { mibPerS: bytes / 1048576 / (ms / 1000), firstFrameMs: first, cpuMsPerFrame: (cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs) / frames, frames };
}

/** GET requests radosgw logged so far (its log names each request). */
function getsLogged(rgwLog: string): number {
  try {
    return readFileSync(rgwLog, 'utf8').split('\n').filter((l) => /beast: .* "GET \/bench-archive\/ct\//.test(l)).length;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  ensureBuild();
  ({ connect } = await builtClient());
  ensureSeries(SERIES);
  const root = join(SERIES, 'uncompressed');
  const closer = new Closer();
  let rgw: Rgw | undefined;
  const lines: string[] = [];
  try {
    rgw = await startRgw();
    const store = rgw;
    closer.add(() => store.stop());
    Object.assign(process.env, rgw.env);
    const s3 = new S3Client({
      endpoint: rgw.endpoint, forcePathStyle: true, region: 'us-east-1',
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const files = readdirSync(root).filter((f) => f.endsWith('.dcm'));
    for (const f of files) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `ct/${f}`, Body: readFileSync(join(root, f)) }));
    s3.destroy();
    console.log(`uploaded ${files.length} objects to s3://${BUCKET}/ct`);

    // Bucket against folder, each its own server process with a saved index, alternating rounds.
    const indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-bench-s3-'));
    closer.add(async () => rmSync(indexDir, { recursive: true, force: true }));
    const indexed = spawnSync(process.execPath, [CLI, 'index', `s3://${BUCKET}/ct`, '--s3-endpoint', rgw.endpoint, '--index-dir', indexDir], { encoding: 'utf8', env: process.env });
    if (indexed.status !== 0) throw new BenchError(`indexing the bucket failed: ${indexed.stderr}`);
    const fromBucket = startServerProcess('dicomstream (bucket)', [CLI, 'serve', `s3://${BUCKET}/ct`, '--s3-endpoint', rgw.endpoint, '--index-dir', indexDir,
      '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--no-watch'], undefined, { echo: () => false });
    closer.add(() => fromBucket.stop());
    const fromFolder = startServerProcess('dicomstream (folder)', [CLI, 'serve', root, '--port', '0', '--host', '127.0.0.1', '--log-level', 'warn', '--no-watch'],
      undefined, { echo: () => false });
    closer.add(() => fromFolder.stop());
    const [bucketUrl, folderUrl] = await Promise.all([fromBucket.url, fromFolder.url]);
    await round(bucketUrl, fromBucket.pid);
    await round(folderUrl, fromFolder.pid);
    const rgwLog = rgw.gatewayLog;
    const bucket: Round[] = [];
    const folder: Round[] = [];
    let gets = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const before = getsLogged(rgwLog);
      bucket.push(await round(bucketUrl, fromBucket.pid));
      gets += getsLogged(rgwLog) - before;
      folder.push(await round(folderUrl, fromFolder.pid));
      console.log(`  round ${r + 1}: bucket ${fmt(bucket.at(-1)!.mibPerS)} MiB/s, folder ${fmt(folder.at(-1)!.mibPerS)} MiB/s`);
    }
    await fromBucket.stop();
    await fromFolder.stop();
    const m = (rs: Round[], k: keyof Round) => median(rs.map((r) => r[k]));
    const frames = bucket[0]!.frames;
    lines.push(
      `## The series from a bucket (Ceph RGW, memstore) and from a folder`,
      '',
      `A new connection each round fetches all ${frames} frames; the server started from its saved index; medians of ${ROUNDS} alternating rounds after one warm-up of each. The frame cache (64 MiB) holds part of the 100 MiB series, so most frames are read each round: from the store with ranged GETs, or from the page cache.`,
      '',
      `| metric | bucket | folder | bucket / folder |`,
      `|---|---:|---:|---:|`,
      `| throughput, MiB/s | ${fmt(m(bucket, 'mibPerS'))} | ${fmt(m(folder, 'mibPerS'))} | ${fmt(m(bucket, 'mibPerS') / m(folder, 'mibPerS'), 2)} |`,
      `| first frame, ms (from connecting) | ${fmt(m(bucket, 'firstFrameMs'))} | ${fmt(m(folder, 'firstFrameMs'))} | ${fmt(m(bucket, 'firstFrameMs') / m(folder, 'firstFrameMs'), 2)} |`,
      `| server CPU per frame, ms | ${fmt(m(bucket, 'cpuMsPerFrame'), 3)} | ${fmt(m(folder, 'cpuMsPerFrame'), 3)} | ${fmt(m(bucket, 'cpuMsPerFrame') / m(folder, 'cpuMsPerFrame'), 2)} |`,
      `| GETs per frame (radosgw's log) | ${fmt(gets / (ROUNDS * frames), 2)} | | |`,
      '',
      `Rounds, MiB/s: bucket ${bucket.map((r) => fmt(r.mibPerS)).join(', ')}; folder ${folder.map((r) => fmt(r.mibPerS)).join(', ')}.`,
      '',
    );

    // A replica lost under a client: three read-only replicas of the folder behind HAProxy.
    const shared = mkdtempSync(join(tmpdir(), 'dicomstream-bench-shared-'));
    closer.add(async () => rmSync(shared, { recursive: true, force: true }));
    const made = spawnSync(process.execPath, [CLI, 'index', root, '--index-dir', shared], { encoding: 'utf8' });
    if (made.status !== 0) throw new BenchError(`indexing for the replicas failed: ${made.stderr}`);
    const replicas = await Promise.all([0, 1, 2].map(() => startReplica(root, shared)));
    closer.add(async () => { await Promise.all(replicas.map((r) => stopReplica(r, 'SIGKILL'))); });
    const balancer = await startHaproxy(replicas.map((r) => r.port));
    closer.add(() => balancer.stop());
    const kills: Array<{ asked: number; reconnectMs: number; gapMs: number; totalMs: number }> = [];
    for (let r = 0; r < Math.min(ROUNDS, 2); r++) {
      const live = replicas.filter((x) => x.process.exitCode === null && x.process.signalCode === null);
      if (live.length < 2) break;
      const c = await connect(`ws://127.0.0.1:${balancer.port}/`, { WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
      const [study] = await c.listStudies();
      const series = await c.openSeries(study!.series[0]!.seriesInstanceUid);
      const asked: number[] = [];
      let reconnectedAt = 0;
      c.onReconnect((info) => { asked.push(info.frames); reconnectedAt = performance.now(); });
      const arrivals: number[] = [];
      let killedAt = 0;
      const t0 = performance.now();
      for await (const f of c.requestFrames(series.instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 })))) {
        arrivals.push(performance.now());
        if (f && arrivals.length === 60 && !killedAt) {
          const counts = await Promise.all(live.map(async (x) => (await (await fetch(`http://127.0.0.1:${x.port}/metrics`)).text()).match(/^dicomstream_connections (\d+)/m)?.[1]));
          const serving = live.find((_, i) => Number(counts[i]) > 0);
          if (!serving) throw new BenchError('no replica serves the client');
          killedAt = performance.now();
          serving.process.kill('SIGKILL');
        }
      }
      // Frames the client had in hand still arrive after the kill: the gap is to the new connection's first.
      const next = arrivals.find((t) => t >= reconnectedAt) ?? reconnectedAt;
      kills.push({ asked: asked[0] ?? 0, reconnectMs: reconnectedAt - killedAt, gapMs: next - killedAt, totalMs: performance.now() - t0 });
      if (arrivals.length !== series.instances.length) throw new BenchError(`after the kill ${arrivals.length} of ${series.instances.length} frames arrived`);
      c.close();
    }
    lines.push(
      `## A replica killed (SIGKILL) under a client, behind HAProxy`,
      '',
      `Three read-only replicas of the folder behind HAProxy (deploy/haproxy.cfg, checks every 200 ms); one client fetches the series; after its 60th frame the replica serving it is killed. Every frame arrived, once.`,
      '',
      `| kill | frames asked again | kill to reconnected, ms | kill to the new connection's first frame, ms | whole series, ms |`,
      `|---:|---:|---:|---:|---:|`,
      ...kills.map((k, i) => `| ${i + 1} | ${k.asked} | ${fmt(k.reconnectMs)} | ${fmt(k.gapMs)} | ${fmt(k.totalMs)} |`),
      '',
    );

    // 1, 2 and 3 replicas behind HAProxy; 8 and 32 clients, each on one of three series (so the
    // series hash spreads them), every client fetching its whole series at once.
    const manifest = readSeriesManifest(SERIES);
    const copies = seriesCopies(root, [manifest.study_instance_uid, manifest.series_instance_uid].filter((u): u is string => typeof u === 'string'));
    const scaleIndex = mkdtempSync(join(tmpdir(), 'dicomstream-bench-scale-'));
    closer.add(async () => rmSync(scaleIndex, { recursive: true, force: true }));
    const indexedCopies = spawnSync(process.execPath, [CLI, 'index', copies, '--index-dir', scaleIndex], { encoding: 'utf8' });
    if (indexedCopies.status !== 0) throw new BenchError(`indexing the copies failed: ${indexedCopies.stderr}`);
    const rows: string[] = [];
    for (const count of [1, 2, 3]) {
      const set = await Promise.all(Array.from({ length: count }, () => startReplica(copies, scaleIndex)));
      const lb = await startHaproxy(set.map((r) => r.port));
      try {
        const probe = await connect(`ws://127.0.0.1:${lb.port}/`, { WebSocket, reconnect: false });
        const uids = (await probe.listStudies()).flatMap((st) => st.series.map((x) => x.seriesInstanceUid)).sort();
        probe.close();
        if (uids.length !== 3) throw new BenchError(`${uids.length} series in the copies, not 3`);
        for (const clients of [8, 32]) {
          const results: Array<{ mibPerS: number; cpuMsPerFrame: number[] }> = [];
          for (let r = 0; r < 3; r++) {
            const cpu0 = set.map((x) => processCpu(x.process.pid!));
            const t0 = performance.now();
            const bytes = await Promise.all(Array.from({ length: clients }, async (_, i) => {
              const c = await connect(`ws://127.0.0.1:${lb.port}/?series=${uids[i % 3]}`, { WebSocket, reconnect: false });
              const series = await c.openSeries(uids[i % 3]!);
              let n = 0;
              for await (const f of c.requestFrames(series.instances.map((x) => ({ sopInstanceUid: x.sopInstanceUid, frameNumber: 1 })))) n += f.bytes.length;
              c.close();
              return n;
            }));
            const seconds = (performance.now() - t0) / 1000;
            const frames = bytes.reduce((a, b) => a + b, 0) / (512 * 1024);
            const cpu = set.map((x, k) => { const c1 = processCpu(x.process.pid!); return c1.userMs + c1.systemMs - cpu0[k]!.userMs - cpu0[k]!.systemMs; });
            // The first round warms each replica's cache and code: not counted.
            if (r > 0) results.push({ mibPerS: bytes.reduce((a, b) => a + b, 0) / 1048576 / seconds, cpuMsPerFrame: cpu.map((ms) => ms / frames) });
          }
          const perReplica = set.map((_, k) => median(results.map((x) => x.cpuMsPerFrame[k]!)));
          rows.push(`| ${count} | ${clients} | ${fmt(median(results.map((x) => x.mibPerS)))} | ${perReplica.map((x) => fmt(x, 3)).join(' / ')} | ${fmt(perReplica.reduce((a, b) => a + b, 0), 3)} |`);
          console.log(`  ${count} replica(s), ${clients} clients: ${rows.at(-1)}`);
        }
      } finally {
        await lb.stop();
        await Promise.all(set.map((x) => stopReplica(x, 'SIGTERM')));
      }
    }
    lines.push(
      `## 1, 2 and 3 replicas behind HAProxy, 8 and 32 clients`,
      '',
      `Three series (the CT under three sets of UIDs, \`bench/out/scale-series\`), read-only replicas on one index behind HAProxy (\`deploy/haproxy.cfg\`); client i opens series i mod 3 with \`?series=\`, so consistent hashing spreads the series over the replicas. Every client fetches its whole series at once; medians of 2 rounds after a warm-up. CPU per frame is each replica's CPU over all frames delivered; the sum is what the set spends per frame. With three series, consistent hashing need not give each replica one: a replica with none shows almost no CPU.`,
      '',
      `| replicas | clients | throughput, MiB/s (all clients) | server CPU per frame, ms (each replica) | sum |`,
      `|---:|---:|---:|---|---:|`,
      ...rows,
      '',
    );
  } finally {
    await closer.closeAll();
  }
  const report = [
    `# dicomstream scale-out benchmark`,
    '',
    `- date: ${new Date().toISOString()}; Node ${process.version}; nproc ${nproc()}`,
    `- series: ${relative(PROJECT, SERIES)}/uncompressed (200 × 512 KiB); store: Ceph RGW ${spawnSync('radosgw', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').slice(0, 3).join(' ')} on 127.0.0.1`,
    `- on ${nproc()} cores, the store, the servers and the client share the machine: these figures show overhead, not speed-up`,
    '',
    ...lines,
  ].join('\n') + '\n';
  console.log('\n' + report);
  writeFileSync(join(OUT, 'scale-results.md'), report);
  console.log(`written to ${relative(PROJECT, join(OUT, 'scale-results.md'))}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof BenchError ? `bench:scale: ${e.message}` : e);
  process.exit(1);
});
