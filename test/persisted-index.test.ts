// The parser index saved to disk and reused: every corpus file's entry round-trips; a restart
// serves without parsing; files added, replaced and deleted while serving are picked up; broken
// index files are rebuilt; an interrupted index run keeps what it finished; caches keep their bounds.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createLogger, indexFile, startServer, type RunningServer, type ServerOptions } from '../server/index.js';
import { IndexStore } from '../server/index/index-store.js';
import { ParsePool } from '../server/index/parse-pool.js';
import { refreshIndex, type Parser } from '../server/index/refresh.js';
import { smallImage, writeTree } from '../server/sample/tree.js';
import { connect, type SeriesUpdated } from '../web-client/index.js';
import { expectation, filesDir, manifest, sha256 } from './helpers/corpus.js';
import { waitFor } from './helpers/wait-for.js';

const quiet = createLogger('silent');

function copyOfCorpus(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-persist-'));
  cpSync(filesDir, dir, { recursive: true, filter: (src) => !src.includes('.dicomstream') });
  return dir;
}

/** A server whose log lines are kept, on 127.0.0.1. */
async function serve(root: string, options: Partial<ServerOptions> = {}): Promise<{ server: RunningServer; lines: string[] }> {
  const lines: string[] = [];
  const server = await startServer({ root, host: '127.0.0.1', port: 0, log: createLogger('warn', (l) => lines.push(l)), watch: false, ...options });
  return { server, lines };
}

describe('persisted parser index', () => {
  let dir = '';
  before(() => { dir = copyOfCorpus(); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('saves every corpus file\'s entry, and reads it back equal to a fresh parse', async () => {
    const pool = new ParsePool(0);
    const store = new IndexStore(dir, join(dir, '.dicomstream'), (p) => pool.parse(p));
    const result = await refreshIndex(dir, undefined, pool, store);
    assert.equal(result.files, manifest.files.length);
    let compared = 0;
    for (const uid of new Set(result.index.instances.map((r) => r.seriesInstanceUid))) {
      const { files } = await store.readSeries(uid);
      for (const saved of files) {
        assert.deepStrictEqual(saved, await indexFile(saved.path), saved.path);
        compared++;
      }
    }
    // Every indexable corpus file (duplicates too) went through the disk format.
    const indexable = manifest.files.filter((f) => expectation(f).outcome !== 'skipped').length;
    assert.equal(compared, indexable);
    assert.equal(result.index.skipped.length, manifest.files.length - indexable);
    // The catalogue on disk reads back the same records.
    const catalogue = await store.readCatalogue();
    assert.deepStrictEqual(catalogue, result.index);
  });

  it('restarts on the saved index without parsing any DICOM file, and serves every frame byte-exact', async () => {
    rmSync(join(dir, '.dicomstream'), { recursive: true, force: true });
    const first = await serve(dir);
    assert.equal(first.server.parses, manifest.files.length, 'a cold start parses every file');
    await first.server.close();
    assert.ok(existsSync(join(dir, '.dicomstream', 'catalogue.dsix')), 'index saved inside the served folder by default');

    const { server } = await serve(dir);
    try {
      assert.equal(server.parses, 0, 'no file parsed at start');
      assert.equal(server.index.parsed, 0);
      assert.equal(server.index.reused + server.index.skipped.length, manifest.files.length);
      const c = await connect(server.url, { WebSocket });
      let frames = 0;
      for (const study of await c.listStudies()) {
        for (const s of study.series) {
          for (const instance of (await c.openSeries(s.seriesInstanceUid)).instances) {
            const hashes = manifest.files.filter((f) => f.sop_instance_uid === instance.sopInstanceUid).map((f) => {
              const e = expectation(f);
              return e.outcome === 'served' ? e.hashes : [];
            });
            for (let n = 1; n <= instance.numberOfFrames; n++) {
              const frame = await c.getFrame(instance.sopInstanceUid, n);
              const wanted = hashes.map((h) => h[n - 1]).filter(Boolean);
              if (wanted.length) assert.ok(wanted.includes(sha256(frame.bytes)), `${instance.sopInstanceUid}#${n}`);
              frames++;
            }
          }
        }
      }
      c.close();
      assert.equal(frames, server.catalogue.frameCount);
      assert.equal(server.parses, 0, 'frames served from the saved index, nothing parsed');
    } finally {
      await server.close();
    }
  });

  it('rebuilds a truncated, a garbage and an older-version index file, and says so', async () => {
    const indexDir = join(dir, '.dicomstream');
    const catalogueFile = join(indexDir, 'catalogue.dsix');
    // Truncated catalogue: everything is parsed again, and it is reported.
    truncateSync(catalogueFile, Math.floor(statSync(catalogueFile).size / 2));
    let run = await serve(dir);
    assert.equal(run.server.index.parsed + run.server.index.skipped.length, manifest.files.length);
    assert.ok(run.lines.some((l) => /not trusted/.test(l) && /partial file/.test(l)), run.lines.join('\n'));
    await run.server.close();

    // An older format version: reported as such, rebuilt.
    const bytes = readFileSync(catalogueFile);
    bytes.writeUInt32LE(0, 4);
    writeFileSync(catalogueFile, bytes);
    run = await serve(dir);
    assert.ok(run.lines.some((l) => /format version 0/.test(l)), run.lines.join('\n'));
    assert.ok(run.server.parses > 0);
    await run.server.close();

    // A garbage series file: the start parses nothing; opening that series rebuilds it from its files.
    const seriesFiles = readdirSync(join(indexDir, 'series'), { recursive: true }).map(String).filter((f) => f.endsWith('.dsix'));
    assert.ok(seriesFiles.length > 1);
    run = await serve(dir);
    const target = run.server.catalogue.listStudies(0, 100).studies.flatMap((s) => s.series).find((s) => s.numberOfInstances > 0)!;
    await run.server.close();
    const store = new IndexStore(dir, indexDir, () => Promise.reject(new Error('unused')));
    writeFileSync(store.seriesPath(target.seriesInstanceUid), Buffer.from('not an index at all, just garbage bytes'));
    run = await serve(dir);
    try {
      assert.equal(run.server.parses, 0);
      const c = await connect(run.server.url, { WebSocket });
      const series = await c.openSeries(target.seriesInstanceUid);
      assert.equal(series.instances.length, target.numberOfInstances);
      assert.ok(run.server.parses >= target.numberOfInstances, 'its files parsed again');
      const frame = await c.getFrame(series.instances[0]!.sopInstanceUid, 1);
      const hashes = manifest.files.filter((f) => f.sop_instance_uid === series.instances[0]!.sopInstanceUid).map((f) => {
        const e = expectation(f);
        return e.outcome === 'served' ? e.hashes[0] : undefined;
      });
      if (hashes.some(Boolean)) assert.ok(hashes.includes(sha256(frame.bytes)));
      c.close();
      assert.ok(run.lines.some((l) => /not trusted/.test(l) && /magic/.test(l)), run.lines.join('\n'));
      assert.ok((await store.readSeries(target.seriesInstanceUid)).files.length >= target.numberOfInstances, 'the series file is good again');
    } finally {
      await run.server.close();
    }
  });
});

describe('live changes', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-live-'));
    writeTree(dir, 10, { perSeries: 5, seriesPerStudy: 2, salt: 'live' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('picks up files added, replaced and deleted while serving, and tells clients with the series open', async () => {
    const { server } = await serve(dir, { watch: true, rescanInterval: 0 });
    const c = await connect(server.url, { WebSocket });
    try {
      const updates: SeriesUpdated[] = [];
      c.onSeriesUpdated((u) => updates.push(u));
      const [study] = await c.listStudies();
      const seriesUid = study!.series[0]!.seriesInstanceUid;
      const before = await c.openSeries(seriesUid);
      assert.equal(before.instances.length, 5);
      const folder = join(dir, 'study-0', 'series-0');

      // Added: the watcher notices, the client is told, the new manifest has it.
      writeFileSync(join(folder, '5.dcm'), smallImage(0, 0, 5, { salt: 'live' }));
      await waitFor(() => updates.length >= 1, 'the added file', 10_000);
      assert.deepEqual(updates[0], { seriesInstanceUid: seriesUid, removed: false });
      const added = await c.openSeries(seriesUid);
      assert.equal(added.instances.length, 6);
      const newest = added.instances.find((i) => i.instanceNumber === 6)!;
      assert.equal((await c.getFrame(newest.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);

      // Replaced (same instance, now 32×32): its new frame is served, not the old bytes.
      const replacedUid = before.instances.find((i) => i.instanceNumber === 1)!.sopInstanceUid;
      assert.equal((await c.getFrame(replacedUid, 1)).bytes.length, 64 * 64 * 2);
      writeFileSync(join(folder, '0.dcm'), smallImage(0, 0, 0, { salt: 'live', size: 32 }));
      await waitFor(() => updates.length >= 2, 'the replaced file', 10_000);
      assert.equal((await c.getFrame(replacedUid, 1)).bytes.length, 32 * 32 * 2);

      // Deleted: a clear error for its frames.
      const deletedUid = before.instances.find((i) => i.instanceNumber === 2)!.sopInstanceUid;
      unlinkSync(join(folder, '1.dcm'));
      await waitFor(() => updates.length >= 3, 'the deleted file', 10_000);
      await assert.rejects(c.getFrame(deletedUid, 1), (e: Error & { code?: string }) => e.code === 'UNKNOWN_INSTANCE' && /deleted/.test(e.message));
      assert.equal((await c.openSeries(seriesUid)).instances.length, 5);
      // Only the series that changed was announced; the restart later needs no parse of the rest.
      assert.ok(updates.every((u) => u.seriesInstanceUid === seriesUid));
    } finally {
      c.close();
      await server.close();
    }
    const again = await serve(dir);
    assert.equal(again.server.parses, 0, 'the live changes were saved in the index');
    assert.equal(again.server.catalogue.instanceCount, 10);
    await again.server.close();
  });

  it('refresh() picks up changes without a watcher; a series that loses all its files is announced as removed', async () => {
    const { server } = await serve(dir, { watch: false });
    const c = await connect(server.url, { WebSocket });
    try {
      const updates: SeriesUpdated[] = [];
      c.onSeriesUpdated((u) => updates.push(u));
      const study = (await c.listStudies()).find((s) => s.series.length === 2)!;
      const second = study.series[1]!;
      await c.openSeries(second.seriesInstanceUid);
      rmSync(join(dir, 'study-0', 'series-1'), { recursive: true });
      const summary = await server.refresh();
      assert.equal(summary.removed, 5);
      assert.equal(server.catalogue.hasSeries(second.seriesInstanceUid), false);
      await waitFor(() => updates.length >= 1, 'the update', 10_000);
      assert.deepEqual(updates, [{ seriesInstanceUid: second.seriesInstanceUid, removed: true }]);
      await assert.rejects(c.openSeries(second.seriesInstanceUid), /no series/);
    } finally {
      c.close();
      await server.close();
    }
  });
});

describe('indexing a large folder', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dicomstream-tree-'));
    writeTree(dir, 600, { perSeries: 20, seriesPerStudy: 3, salt: 'resume' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps what an interrupted run finished, and the next run parses only the rest', async () => {
    const indexDir = join(dir, '.dicomstream');
    const pool = new ParsePool(2);
    try {
      // A parser that stops answering after 250 files, as if the process were killed there.
      let handed = 0;
      const stalling: Parser = { parse: (path, here) => (++handed <= 250 ? pool.parse(path, here) : new Promise(() => undefined)) };
      const store = new IndexStore(dir, indexDir, (p) => pool.parse(p));
      void refreshIndex(dir, undefined, stalling, store, { saveEveryMs: 0, batchFiles: 300 });
      await waitFor(async () => (await store.readCatalogue())?.instances.length === 250, '250 files saved', 10_000);

      const resumed = new IndexStore(dir, indexDir, (p) => pool.parse(p));
      const result = await refreshIndex(dir, await resumed.readCatalogue(), pool, resumed);
      assert.equal(result.reused, 250);
      assert.equal(result.parsed, 350);
      // Both runs' entries are served: every series complete, every entry equal to a fresh parse.
      const { server } = await serve(dir);
      try {
        assert.equal(server.parses, 0);
        assert.equal(server.catalogue.instanceCount, 600);
        assert.equal(server.catalogue.seriesCount, 30);
        for (const study of server.catalogue.listStudies(0, 100).studies) {
          for (const s of study.series) assert.equal((await server.catalogue.series(s.seriesInstanceUid))!.instances.length, 20);
        }
      } finally {
        await server.close();
      }
    } finally {
      await pool.close();
    }
  });

  it('keeps opened series within the index cache\'s byte bound', async () => {
    const store = new IndexStore(dir, join(dir, '.dicomstream'), () => Promise.reject(new Error('unused')));
    const first = (await store.readCatalogue())!.series[0]!.seriesInstanceUid;
    const oneSeries = statSync(store.seriesPath(first)).size;
    const bound = oneSeries * 3 + 100;
    const { server } = await serve(dir, { indexCache: bound });
    try {
      for (const study of server.catalogue.listStudies(0, 100).studies) {
        for (const s of study.series) {
          await server.catalogue.series(s.seriesInstanceUid);
          assert.ok(server.indexCache().bytes <= bound, `${server.indexCache().bytes} bytes cached, bound ${bound}`);
        }
      }
      const stats = server.indexCache();
      assert.equal(stats.misses, 30);
      assert.ok(stats.evictions >= 27, `${stats.evictions} evictions`);
      assert.ok(stats.entries <= 3);
      // Frames are still served for a series that was evicted: it is loaded again.
      const c = await connect(server.url, { WebSocket });
      const study = server.catalogue.listStudies(0, 1).studies[0]!;
      const manifestOf = await c.openSeries(study.series[0]!.seriesInstanceUid);
      assert.equal((await c.getFrame(manifestOf.instances[0]!.sopInstanceUid, 1)).bytes.length, 64 * 64 * 2);
      c.close();
      assert.ok(server.indexCache().bytes <= bound);
    } finally {
      await server.close();
    }
  });
});
