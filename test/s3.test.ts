// An archive in object storage: the corpus in a bucket of a real S3-compatible store (Ceph RGW from
// Debian's packages, started here on 127.0.0.1), served with `serve s3://bucket/prefix`: every
// frame byte-exact, a restart from the saved index without a GET of any head, objects added,
// replaced and deleted picked up, and the store going away and coming back under a client.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import WebSocket from 'ws';
import { createLogger, startServer, type RunningServer, type ServerOptions } from '../server/index.js';
import { writeDicom, type DicomElement } from '../server/sample/dicom-writer.js';
import { smallImage } from '../server/sample/tree.js';
import { connect, type DicomStreamClient } from '../web-client/index.js';
import { filesDir, servedFrameHashes, sha256 } from './helpers/corpus.js';
import { multiFrameElements } from './helpers/multi-frame.js';
import { startRgw, type Rgw } from './helpers/rgw.js';
import { servedFiles } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

const BUCKET = 'dicom-archive';
const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'server', 'cli.js');

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => !f.split('/').some((p) => p.startsWith('.')) && statSync(join(dir, f)).isFile());
}

/** Frame 1 of every instance the client can open that the corpus has reference hashes for. */
async function firstFrames(client: DicomStreamClient, expected: Map<string, unknown>): Promise<Array<{ sopInstanceUid: string; frameNumber: number }>> {
  const frames: Array<{ sopInstanceUid: string; frameNumber: number }> = [];
  for (const study of await client.listStudies()) {
    for (const s of study.series) {
      for (const i of (await client.openSeries(s.seriesInstanceUid)).instances) {
        if (expected.has(i.sopInstanceUid)) frames.push({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 });
      }
    }
  }
  return frames;
}

describe('an archive in S3-compatible object storage (Ceph RGW)', () => {
  let rgw: Rgw;
  let s3: S3Client;
  let indexDir = '';
  const put = (key: string, body: Uint8Array) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

  before(async () => {
    rgw = await startRgw();
    Object.assign(process.env, rgw.env);
    s3 = new S3Client({
      endpoint: rgw.endpoint, forcePathStyle: true, region: 'us-east-1',
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    for (const f of filesUnder(filesDir)) await put(`corpus/${relative(filesDir, join(filesDir, f))}`, readFileSync(join(filesDir, f)));
    indexDir = mkdtempSync(join(tmpdir(), 'dicomstream-s3-index-'));
  });

  after(async () => {
    s3?.destroy();
    await rgw?.stop();
    rmSync(indexDir, { recursive: true, force: true });
  });

  const serve = (root: string, dir = indexDir, options: Partial<ServerOptions> = {}): Promise<RunningServer> =>
    startServer({ root, s3Endpoint: rgw.endpoint, indexDir: dir, host: '127.0.0.1', port: 0, log: createLogger('silent'), watch: false, ...options });

  it('serves every corpus frame from the bucket byte-exact; a restart reads no object to index', async () => {
    const expected = servedFrameHashes();
    const total = [...expected.values()].reduce((n, frames) => n + frames.length, 0);
    for (const round of ['cold', 'from the saved index']) {
      const server = await serve(`s3://${BUCKET}/corpus`);
      try {
        if (round === 'cold') assert.ok(server.parses > 50, `${server.parses} objects indexed`);
        else assert.equal(server.parses, 0, 'nothing indexed again');
        const c = await connect(server.url, { WebSocket });
        let checked = 0;
        for (const study of await c.listStudies()) {
          for (const s of study.series) {
            for (const instance of (await c.openSeries(s.seriesInstanceUid)).instances) {
              const hashes = expected.get(instance.sopInstanceUid);
              if (!hashes) continue;
              for (let n = 1; n <= instance.numberOfFrames; n++) {
                assert.ok(hashes[n - 1]?.has(sha256((await c.getFrame(instance.sopInstanceUid, n)).bytes)), `${round}: ${instance.sopInstanceUid}#${n}`);
                checked++;
              }
            }
          }
        }
        c.close();
        assert.equal(checked, total, `${round}: every served corpus frame`);
        // DICOMweb from the bucket: a stored instance comes back as the object, byte for byte; its metadata from its head.
        const f = (await servedFiles(server.catalogue)).find((x) => x.path.endsWith('/MR_small.dcm'))!;
        const path = `studies/${f.study.studyInstanceUid}/series/${f.series.seriesInstanceUid}/instances/${f.image.sopInstanceUid}`;
        const stored = await fetch(`http://127.0.0.1:${server.port}/dicomweb/${path}`, { headers: { accept: 'application/dicom' } });
        assert.equal(stored.status, 200);
        assert.equal(sha256(new Uint8Array(await stored.arrayBuffer())), sha256(readFileSync(join(filesDir, relative(`s3://${BUCKET}/corpus`, f.path)))));
        const metadata = await fetch(`http://127.0.0.1:${server.port}/dicomweb/${path}/metadata`, { headers: { accept: 'application/dicom+json' } });
        assert.equal(metadata.status, 200);
        const [attributes] = await metadata.json() as Array<Record<string, { Value?: unknown[] }>>;
        assert.deepEqual(attributes!['00080018']!.Value, [f.image.sopInstanceUid]);
      } finally {
        await server.close();
      }
    }
  });

  it('picks up objects added, replaced and deleted (refresh), and tells clients with the series open', async () => {
    const prefix = 'live';
    for (let i = 0; i < 3; i++) await put(`${prefix}/s/${i}.dcm`, smallImage(0, 0, i, { salt: 's3' }));
    const server = await serve(`s3://${BUCKET}/${prefix}`, mkdtempSync(join(tmpdir(), 'dicomstream-s3-live-')));
    const c = await connect(server.url, { WebSocket });
    try {
      const updates: string[] = [];
      c.onSeriesUpdated((u) => updates.push(u.seriesInstanceUid));
      const [study] = await c.listStudies();
      const uid = study!.series[0]!.seriesInstanceUid;
      const before = await c.openSeries(uid);
      assert.equal(before.instances.length, 3);
      const replacedUid = before.instances.find((i) => i.instanceNumber === 1)!.sopInstanceUid;
      const servedBefore = sha256((await c.getFrame(replacedUid, 1)).bytes);
      await put(`${prefix}/s/3.dcm`, smallImage(0, 0, 3, { salt: 's3' }));
      // Replaced at once by the same instance, the same size, one pixel changed: likely within the
      // same second, so only the ETag tells the versions apart.
      const changed = smallImage(0, 0, 0, { salt: 's3' });
      changed[changed.length - 2] ^= 0xff;
      await put(`${prefix}/s/0.dcm`, changed);
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}/s/1.dcm` }));
      // Until the refresh, a read asks for the indexed version (If-Match its ETag): another
      // version's bytes are never served under the old index.
      const third = before.instances.find((i) => i.instanceNumber === 3)!.sopInstanceUid;
      const changedThird = smallImage(0, 0, 2, { salt: 's3' });
      changedThird[changedThird.length - 2] ^= 0xff;
      await put(`${prefix}/s/2.dcm`, changedThird);
      await assert.rejects(c.getFrame(third, 1), (e: Error & { code?: string }) => e.code === 'FRAME_UNREADABLE' && /replaced since it was indexed/.test(e.message));
      const summary = await server.refresh();
      assert.equal(summary.removed, 1);
      await waitFor(() => updates.length >= 1, 'the update');
      const after = await c.openSeries(uid);
      assert.equal(after.instances.length, 3);
      const servedAfter = (await c.getFrame(replacedUid, 1)).bytes;
      assert.notEqual(sha256(servedAfter), servedBefore);
      assert.equal(sha256(servedAfter), sha256(changed.subarray(changed.length - 64 * 64 * 2)), 'the new version\'s pixels');
      assert.equal(sha256((await c.getFrame(third, 1)).bytes), sha256(changedThird.subarray(changedThird.length - 64 * 64 * 2)));
      const added = after.instances.find((i) => i.instanceNumber === 4)!;
      assert.equal((await c.getFrame(added.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('reads a request\'s adjacent frames of one object, and a frame\'s fragments, in one GET', async () => {
    const side = 64;
    const multiFrame = (uid: string, frames: number, pixelData: DicomElement['value'], bits: 8 | 16, transferSyntax?: string) =>
      writeDicom(multiFrameElements({ sopInstanceUid: uid, studyInstanceUid: '2.25.7001', seriesInstanceUid: '2.25.7002', frames, side, pixelData, bits }), transferSyntax);
    // 40 native frames end to end; 8 encapsulated frames of 3 fragments each.
    const nativeBytes = Uint8Array.from({ length: 40 * side * side * 2 }, (_, i) => (i * 7 + (i >> 13) * 31) & 0xff);
    const codestreams = Array.from({ length: 8 }, (_, f) => Uint8Array.from({ length: 6000 + f * 2 }, (_, i) => (i < 2 ? [0xff, 0xd8][i]! : (i * 13 + f * 29) & 0xff)));
    await put('runs/native.dcm', multiFrame('2.25.7003', 40, nativeBytes, 16));
    await put('runs/fragments.dcm', multiFrame('2.25.7004', 8, { frames: codestreams, fragmentsPerFrame: 3 }, 8, '1.2.840.10008.1.2.4.50'));
    const gets = () => readFileSync(rgw.gatewayLog, 'utf8').split('\n').filter((l) => /"GET \/dicom-archive\/runs\//.test(l)).length;
    const server = await serve(`s3://${BUCKET}/runs`, mkdtempSync(join(tmpdir(), 'dicomstream-s3-runs-')));
    const c = await connect(server.url, { WebSocket });
    try {
      const counts: Record<string, number> = {};
      for (const [uid, frames, expected] of [
        ['2.25.7003', 40, (n: number) => nativeBytes.subarray((n - 1) * side * side * 2, n * side * side * 2)],
        ['2.25.7004', 8, (n: number) => codestreams[n - 1]!],
      ] as const) {
        const before = gets();
        let served = 0;
        for await (const f of c.requestFrames(Array.from({ length: frames }, (_, i) => ({ sopInstanceUid: uid, frameNumber: i + 1 })))) {
          assert.equal(sha256(f.bytes), sha256(expected(f.frameNumber)), `${uid}#${f.frameNumber}`);
          served++;
        }
        assert.equal(served, frames);
        counts[uid] = gets() - before;
      }
      // One GET a frame (and one a fragment) without merging; the readahead's runs take several frames at once.
      assert.ok(counts['2.25.7003']! <= 40 / 2 + 1, `${counts['2.25.7003']} GETs for 40 adjacent frames`);
      assert.ok(counts['2.25.7004']! <= 8 / 2 + 1, `${counts['2.25.7004']} GETs for 8 frames of 3 fragments`);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('keeps the index in the bucket: `dicomstream index` writes it under one lock, replicas serve it read-only and follow its new versions', async () => {
    const prefix = 'shared';
    const indexUrl = `s3://${BUCKET}/${prefix}/.dicomstream`;
    for (let i = 0; i < 2; i++) await put(`${prefix}/s/${i}.dcm`, smallImage(1, 0, i, { salt: 'bucket-index' }));
    const env = { ...process.env, ...rgw.env };
    const indexCli = () => spawnSync(process.execPath, [cli, 'index', `s3://${BUCKET}/${prefix}`, '--index-dir', indexUrl, '--s3-endpoint', rgw.endpoint], { encoding: 'utf8', env });
    const first = indexCli();
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`index saved in ${indexUrl.replace(/[./]/g, '\\$&')}: 2 parsed`));
    const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/.dicomstream/` }))).Contents ?? []).map((o) => o.Key!.slice(`${prefix}/.dicomstream/`.length));
    const saved = await keys();
    assert.ok(saved.includes('catalogue.dsix') && saved.some((k) => /^series\/[0-9a-f]{2}\/[0-9a-f]{40}\.dsix$/.test(k)), saved.join());
    assert.ok(!saved.includes('lock'), 'the lock is let go');

    const replica = await serve(`s3://${BUCKET}/${prefix}`, indexUrl, { readOnlyIndex: true, indexPollMs: 100 });
    // A writer holding the lock: the index command is refused with it named.
    const writer = await serve(`s3://${BUCKET}/${prefix}`, indexUrl);
    const c = await connect(replica.url, { WebSocket });
    try {
      assert.equal(replica.parses, 0, 'the replica parsed nothing');
      assert.ok((await keys()).includes('lock'));
      const refused = indexCli();
      assert.notEqual(refused.status, 0);
      assert.match(refused.stderr, /INDEX_LOCKED/);
      assert.match(refused.stderr, new RegExp(`pid ${process.pid} on ${hostname()} \\(dicomstream serve`));
      await writer.close();
      assert.ok(!(await keys()).includes('lock'), 'the writer let go of its lock');

      const [study] = await c.listStudies();
      const uid = study!.series[0]!.seriesInstanceUid;
      const before = await c.openSeries(uid);
      assert.equal(before.instances.length, 2);
      assert.equal((await c.getFrame(before.instances[0]!.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
      const updates: string[] = [];
      c.onSeriesUpdated((u) => updates.push(u.seriesInstanceUid));
      await put(`${prefix}/s/2.dcm`, smallImage(1, 0, 2, { salt: 'bucket-index' }));
      assert.equal(indexCli().status, 0);
      await waitFor(() => updates.includes(uid), 'the replica saw the new version');
      const after = await c.openSeries(uid);
      assert.equal(after.instances.length, 3);
      const added = after.instances.find((i) => !before.instances.some((b) => b.sopInstanceUid === i.sopInstanceUid))!;
      const image = smallImage(1, 0, 2, { salt: 'bucket-index' });
      assert.equal(sha256((await c.getFrame(added.sopInstanceUid, 1)).bytes), sha256(image.subarray(image.length - 64 * 64 * 2)));
      assert.equal(replica.parses, 0, 'still nothing parsed by the replica');
    } finally {
      c.close();
      await writer.close();
      await replica.close();
    }
  });

  it('a hung store holds only the frames it owes: another client\'s cached frames come at once, and the hung reads give up cleanly', async () => {
    const expected = servedFrameHashes();
    const server = await serve(`s3://${BUCKET}/corpus`, indexDir, { s3Timeout: 0.5, readahead: 0 });
    const [a, b] = [await connect(server.url, { WebSocket }), await connect(server.url, { WebSocket })];
    try {
      const frames = await firstFrames(a, expected);
      // B's frames are in the frame cache; A's are not.
      const cached = frames.slice(0, 5);
      for (const f of cached) await b.getFrame(f.sopInstanceUid, 1);
      rgw.freezeGateway();
      const owed = a.requestFrames(frames.slice(5, 9));
      await new Promise((resolve) => setTimeout(resolve, 200)); // A's GETs are out, unanswered
      const t0 = performance.now();
      for (const f of cached) assert.ok(expected.get(f.sopInstanceUid)![0]!.has(sha256((await b.getFrame(f.sopInstanceUid, 1)).bytes)));
      const cachedMs = performance.now() - t0;
      assert.ok(cachedMs < 1000, `cached frames took ${cachedMs.toFixed(0)} ms behind a hung store`);
      const summary = await owed.done;
      assert.equal(summary.framesFailed, 4, 'the owed frames gave up');
      assert.ok(summary.errors.every((e) => e.code === 'FRAME_UNREADABLE'));
      rgw.thawGateway();
      const again = await a.getFrame(frames[6]!.sopInstanceUid, 1);
      assert.ok(expected.get(frames[6]!.sopInstanceUid)![0]!.has(sha256(again.bytes)), 'served again once the store answers');
    } finally {
      rgw.thawGateway();
      a.close();
      b.close();
      await server.close();
    }
  });

  it('the store stopped under a streaming client: frames fail cleanly (none corrupted), the server carries on, and serves again once the store is back', async () => {
    const expected = servedFrameHashes();
    // A frame cache of 1 byte: every frame is a GET, so the outage is seen.
    const server = await serve(`s3://${BUCKET}/corpus`, indexDir, { frameCache: 1, readahead: 0 });
    const c = await connect(server.url, { WebSocket });
    try {
      const frames = await firstFrames(c, expected);
      await rgw.stopGateway();
      const stream = c.requestFrames(frames);
      let good = 0;
      for await (const f of stream) {
        assert.ok(expected.get(f.sopInstanceUid)![0]!.has(sha256(f.bytes)), 'a frame that arrives is right');
        good++;
      }
      const summary = await stream.done;
      assert.equal(good + summary.framesFailed, frames.length, 'every frame arrived or failed');
      assert.ok(summary.framesFailed > 0, 'the outage was seen');
      assert.ok(summary.errors.every((e) => e.code === 'FRAME_UNREADABLE'), summary.errors.map((e) => e.code).join());
      await rgw.startGateway();
      const again = await c.getFrame(frames[0]!.sopInstanceUid, 1);
      assert.ok(expected.get(frames[0]!.sopInstanceUid)![0]!.has(sha256(again.bytes)));
    } finally {
      c.close();
      await server.close();
    }
  });
});
