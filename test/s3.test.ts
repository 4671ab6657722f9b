// An archive in object storage: the corpus in a bucket of a real S3-compatible store (Ceph RGW from
// Debian's packages, started here on 127.0.0.1), served with `serve s3://bucket/prefix`: every
// frame byte-exact, a restart from the saved index without a GET of any head, objects added,
// replaced and deleted picked up, and the store going away and coming back under a client.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import WebSocket from 'ws';
import { createLogger, startServer, type RunningServer } from '../server/index.js';
import { smallImage } from '../server/sample/tree.js';
import { connect } from '../web-client/index.js';
import { filesDir, servedFrameHashes, sha256 } from './helpers/corpus.js';
import { startRgw, type Rgw } from './helpers/rgw.js';
import { servedFiles } from './helpers/server.js';
import { waitFor } from './helpers/wait-for.js';

const BUCKET = 'dicom-archive';

function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => !f.split('/').some((p) => p.startsWith('.')) && statSync(join(dir, f)).isFile());
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

  const serve = (root: string, dir = indexDir): Promise<RunningServer> =>
    startServer({ root, s3Endpoint: rgw.endpoint, indexDir: dir, host: '127.0.0.1', port: 0, log: createLogger('silent'), watch: false });

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
      await put(`${prefix}/s/3.dcm`, smallImage(0, 0, 3, { salt: 's3' }));
      // Replaced with a 32×32 image (a second later, so its date differs from the first upload's).
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await put(`${prefix}/s/0.dcm`, smallImage(0, 0, 0, { salt: 's3', size: 32 }));
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}/s/1.dcm` }));
      const summary = await server.refresh();
      assert.equal(summary.removed, 1);
      await waitFor(() => updates.length >= 1, 'the update');
      const after = await c.openSeries(uid);
      assert.equal(after.instances.length, 3);
      const replaced = after.instances.find((i) => i.instanceNumber === 1)!;
      assert.equal((await c.getFrame(replaced.sopInstanceUid, 1)).bytes.length, 32 * 32 * 2);
      const added = after.instances.find((i) => i.instanceNumber === 4)!;
      assert.equal((await c.getFrame(added.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('the store stopped under a streaming client: frames fail cleanly (none corrupted), the server carries on, and serves again once the store is back', async () => {
    const expected = servedFrameHashes();
    // A frame cache of 1 byte: every frame is a GET, so the outage is seen.
    const server = await startServer({
      root: `s3://${BUCKET}/corpus`, s3Endpoint: rgw.endpoint, indexDir, frameCache: 1, readahead: 0,
      host: '127.0.0.1', port: 0, log: createLogger('silent'), watch: false,
    });
    const c = await connect(server.url, { WebSocket });
    try {
      const frames: Array<{ sopInstanceUid: string; frameNumber: number }> = [];
      for (const study of await c.listStudies()) {
        for (const s of study.series) {
          for (const i of (await c.openSeries(s.seriesInstanceUid)).instances) {
            if (expected.has(i.sopInstanceUid)) frames.push({ sopInstanceUid: i.sopInstanceUid, frameNumber: 1 });
          }
        }
      }
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
