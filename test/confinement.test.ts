// Reads stay inside the served folder: symbolic links leading out are refused (unless the operator
// allows them), a link changed to lead out after indexing is refused at read time, and a tampered
// index naming a path outside is not trusted. Files truncated, replaced or deleted while their
// frames stream get a clean error for those frames, and nothing else is disturbed.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { encodeCatalogueIndex, decodeCatalogueIndex } from '../shared/index-format.js';
import { smallImage, writeTree } from '../server/sample/tree.js';
import { connect, type ProtocolError } from '../web-client/index.js';
import { client, servedFiles, withServer } from './helpers/server.js';

describe('confinement to the served folder', () => {
  let base = '';
  let root = '';
  let outside = '';
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'dicomstream-confine-'));
    root = join(base, 'served');
    outside = join(base, 'private');
    mkdirSync(root);
    mkdirSync(outside);
    writeTree(root, 3, { perSeries: 3, salt: 'inside' });
    writeFileSync(join(outside, 'secret.dcm'), smallImage(9, 9, 9, { salt: 'outside' }));
    mkdirSync(join(outside, 'folder'));
    writeFileSync(join(outside, 'folder', 'secret2.dcm'), smallImage(9, 9, 10, { salt: 'outside' }));
    symlinkSync(join(outside, 'secret.dcm'), join(root, 'link-out.dcm'));
    symlinkSync(join(outside, 'folder'), join(root, 'folder-out'));
    symlinkSync(join(root, 'study-0', 'series-0', '0.dcm'), join(root, 'link-in.dcm'));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('refuses links leading out, reports them, and serves links that stay inside', async () => {
    await withServer({ root }, async (server) => {
      const refused = server.index.skipped.filter((s) => s.code === 'OUTSIDE_ROOT').map((s) => s.path).sort();
      assert.deepEqual(refused, ['folder-out', 'link-out.dcm']);
      const files = await servedFiles(server.catalogue);
      assert.ok(files.every((f) => !f.path.includes('secret')), 'nothing from outside is indexed');
      // link-in.dcm is a second path to an instance inside: a duplicate, served once.
      assert.equal(server.catalogue.instanceCount, 3);
      assert.ok(server.catalogue.duplicates.some((d) => d.path.endsWith('link-in.dcm') || d.servedPath.endsWith('link-in.dcm')));
    });
  });

  it('follows links out only when the operator allows it', async () => {
    await withServer({ root, followSymlinks: true }, async (server) => {
      assert.equal(server.index.skipped.filter((s) => s.code === 'OUTSIDE_ROOT').length, 0);
      assert.equal(server.catalogue.instanceCount, 5);
      const c = await client(server);
      const secret = (await servedFiles(server.catalogue)).find((f) => f.path.endsWith('link-out.dcm'))!;
      assert.equal((await c.getFrame(secret.image.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
      c.close();
    });
  });

  it('refuses a read through a link changed to lead out after indexing', async () => {
    const inner = join(root, 'study-0', 'series-0', '1.dcm');
    const moved = join(root, 'study-0', 'series-0', '1.real');
    copyFileSync(inner, join(base, 'copy.dcm'));
    await withServer({ root, watch: false }, async (server) => {
      const uid = (await servedFiles(server.catalogue)).find((f) => f.path === inner)!.image.sopInstanceUid;
      // The file becomes a link to an outside file of the same size and mtime: still refused.
      copyFileSync(inner, moved);
      unlinkSync(inner);
      writeFileSync(join(outside, 'same.dcm'), readFileSync(join(base, 'copy.dcm')));
      symlinkSync(join(outside, 'same.dcm'), inner);
      const c = await connect(server.url, { WebSocket });
      const error = await c.getFrame(uid, 1).catch((e: ProtocolError) => e);
      assert.equal((error as ProtocolError).code, 'FRAME_UNREADABLE');
      assert.match((error as Error).message, /outside the served folder|changed since it was indexed/);
      c.close();
      unlinkSync(inner);
      copyFileSync(moved, inner);
      unlinkSync(moved);
    });
  });

  it('does not trust a saved index naming a path outside the folder', async () => {
    const indexDir = join(base, 'index');
    await withServer({ root, indexDir }, async () => undefined);
    const file = join(indexDir, 'catalogue.dsix');
    const index = decodeCatalogueIndex(readFileSync(file));
    index.instances[0]!.file.path = '../private/secret.dcm';
    writeFileSync(file, encodeCatalogueIndex(index));
    await withServer({ root, indexDir }, async (server) => {
      assert.ok(server.parses > 0, 'the tampered index was rebuilt from the files');
      assert.ok((await servedFiles(server.catalogue)).every((f) => !f.path.includes('private')));
    });
  });
});

describe('files changing under a stream', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-changing-'));
    writeTree(dir, 12, { perSeries: 12, salt: 'changing', size: 128 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a clean error for the frames of a file truncated, replaced or deleted mid-stream; the rest arrive byte-exact', async () => {
    await withServer({ root: dir, watch: false, chunkSize: 4096, frameCache: 1024 * 1024 }, async (server) => {
      const files = (await servedFiles(server.catalogue)).sort((a, b) => a.image.instanceNumber - b.image.instanceNumber);
      const expected = new Map(files.map((f) => {
        const [offset, length] = f.frames[0]!.segments as [number, number];
        return [f.image.sopInstanceUid, new Uint8Array(readFileSync(f.path).subarray(offset, offset + length))];
      }));
      // Another client streams the same files meanwhile.
      const bystander = await client(server);
      const c = await connect(server.url, { WebSocket, window: 8192 });
      const errors = new Map<string, string>();
      const got = new Map<string, Uint8Array>();
      const [truncated, replaced, deleted] = files.slice(9).map((f) => f.path);
      let bystanding: Promise<unknown[]> | undefined;
      // The files change while the first frame is held: the client grants no more window, so the
      // server stops within a window of it and has not read the last three files yet.
      const changeFiles = () => {
        truncateSync(truncated!, 1000);
        writeFileSync(replaced!, smallImage(0, 0, 99, { salt: 'other', size: 128 }));
        unlinkSync(deleted!);
        bystanding = Promise.all(files.slice(0, 9).map((f) => bystander.getFrame(f.image.sopInstanceUid, 1)));
      };
      const stream = c.requestFrames(files.map((f) => ({ sopInstanceUid: f.image.sopInstanceUid, frameNumber: 1 })), {
        onFrame: (f) => {
          got.set(f.sopInstanceUid, f.bytes);
          if (got.size === 1) changeFiles();
        },
        onError: (e) => { errors.set(e.sopInstanceUid!, e.code); },
      });
      const summary = await stream.done;
      const changed = files.slice(9).map((f) => f.image.sopInstanceUid);
      assert.deepEqual([...errors], changed.map((uid) => [uid, 'FRAME_UNREADABLE']), 'each changed file refused, none sent');
      for (const f of files.slice(0, 9)) assert.deepEqual(new Uint8Array(got.get(f.image.sopInstanceUid)!), expected.get(f.image.sopInstanceUid));
      assert.equal(summary.framesSent + summary.framesFailed, 12);
      for (const frame of (await bystanding!) as Awaited<ReturnType<typeof bystander.getFrame>>[]) assert.deepEqual(new Uint8Array(frame.bytes), expected.get(frame.sopInstanceUid));
      c.close();
      bystander.close();
    });
  });
});
