// DICOMweb on a real server over loopback: WADO-RS frames byte-exact against the corpus manifest
// (as stored, and converted to Explicit VR Little Endian), metadata with bulk data URIs that
// resolve, stored instances, QIDO-RS matching and paging, refusals (400, 404, 406), the access
// policy (token, JWT studies claim) and CORS; and the dicomweb-client package, the reference
// JavaScript DICOMweb client, driving it.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { api } from 'dicomweb-client';
import XMLHttpRequest from 'xhr2';
import type { RunningServer } from '../server/index.js';
import { writeDicom } from '../server/sample/dicom-writer.js';
import { filesDir, manifest, sha256, expectation } from './helpers/corpus.js';
import { servedFiles, withServer } from './helpers/server.js';

const AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const EXPLICIT_LE = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1';
type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

const base = (server: RunningServer) => `http://127.0.0.1:${server.port}/dicomweb`;

/** The parts of a multipart/related body (RFC 2046), each with its headers. */
function parts(body: Buffer, contentType: string): Array<{ type: string; bytes: Buffer }> {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  assert.ok(boundary, `a boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const out: Array<{ type: string; bytes: Buffer }> = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const headEnd = body.indexOf('\r\n\r\n', start);
    const headers = body.subarray(start + 2, headEnd).toString();
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headEnd);
    out.push({ type: /content-type:\s*(.*)/i.exec(headers)?.[1]?.trim() ?? '', bytes: body.subarray(headEnd + 4, next) });
    at = next + 2;
  }
  return out;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: Buffer; headers: Headers }> {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

const json = async (url: string, headers: Record<string, string> = {}) => {
  const res = await get(url, headers);
  assert.equal(res.status, 200, `${url}: ${res.body.toString().slice(0, 200)}`);
  assert.match(res.type, /^application\/dicom\+json/);
  return JSON.parse(res.body.toString()) as Json[];
};

const value = (ds: Json, tag: string) => ds[tag]?.Value?.[0];
const uidPath = (f: { study: { studyInstanceUid: string }; series: { seriesInstanceUid: string }; image: { sopInstanceUid: string } }) =>
  `studies/${f.study.studyInstanceUid}/series/${f.series.seriesInstanceUid}/instances/${f.image.sopInstanceUid}`;

/**
 * Writes a 16-bit MONOCHROME2 instance of random pixels, instance `instance` of series `series`
 * (whose study is `series`.0, and the instance `series`.`instance`), and returns its pixels.
 */
function writeSlice(path: string, o: { series: string; instance: number; rows: number; columns: number }): Buffer {
  const bytes = randomBytes(o.rows * o.columns * 2);
  writeFileSync(path, writeDicom([
    { tag: 0x00080016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' }, { tag: 0x00080018, vr: 'UI', value: `${o.series}.${o.instance}` },
    { tag: 0x0020000d, vr: 'UI', value: `${o.series}.0` }, { tag: 0x0020000e, vr: 'UI', value: o.series },
    { tag: 0x00200013, vr: 'IS', value: String(o.instance) },
    { tag: 0x00280002, vr: 'US', value: 1 }, { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: o.rows }, { tag: 0x00280011, vr: 'US', value: o.columns },
    { tag: 0x00280100, vr: 'US', value: 16 }, { tag: 0x00280101, vr: 'US', value: 16 }, { tag: 0x00280102, vr: 'US', value: 15 },
    { tag: 0x00280103, vr: 'US', value: 0 },
    { tag: 0x7fe00010, vr: 'OW', value: bytes },
  ]));
  return bytes;
}

describe('DICOMweb', () => {
  it('WADO-RS frames as stored equal the manifest\'s stored frames, for every served instance and frame', async () => {
    await withServer({}, async (server) => {
      const served = await servedFiles(server.catalogue);
      assert.ok(served.length >= 25, `${served.length} served`);
      for (const f of served) {
        const entry = manifest.files.find((m) => m.file === basename(f.path))!;
        const expected = expectation(entry);
        assert.equal(expected.outcome, 'served', entry.file);
        const list = f.frames.map((_, i) => i + 1).join(',');
        const res = await get(`${base(server)}/${uidPath(f)}/frames/${list}`, { accept: AS_STORED });
        assert.equal(res.status, 200, `${entry.file}: ${res.body.toString().slice(0, 200)}`);
        const got = parts(res.body, res.type);
        assert.deepEqual(got.map((p) => sha256(p.bytes)), expected.outcome === 'served' ? expected.hashes : [], entry.file);
        const syntax = f.image.encapsulated ? f.image.transferSyntaxUid : f.image.bigEndian ? '1.2.840.10008.1.2.2' : '1.2.840.10008.1.2.1';
        for (const p of got) assert.equal(p.type, `application/octet-stream; transfer-syntax=${syntax}`, entry.file);
      }
    });
  });

  it('frames read past a full frame cache come in reused buffers, byte-exact under concurrent and abandoned requests', async () => {
    // A one-byte cache keeps nothing: every frame is read straight into a pooled buffer, which is
    // reused only once its answer has been written, never while a slow or vanished client holds it.
    await withServer({ frameCache: 1 }, async (server) => {
      const large = (await servedFiles(server.catalogue)).filter((f) => !f.image.encapsulated && f.frames[0]!.length >= 64 * 1024);
      assert.ok(large.length >= 2, `${large.length} native files with frames of 64 KiB or more`);
      const requests = large.flatMap((f) => {
        const entry = manifest.files.find((m) => m.file === basename(f.path))!;
        const expected = expectation(entry);
        assert.equal(expected.outcome, 'served', entry.file);
        return f.frames.slice(0, 3).map((_, i) => ({ file: entry.file, url: `${base(server)}/${uidPath(f)}/frames/${i + 1}`, sha: expected.hashes[i]! }));
      });
      const abandon = (url: string) => new Promise<void>((done) => {
        // Reads the first bytes of the answer, then goes away with the rest unread.
        const req = httpGet(url, { headers: { accept: AS_STORED } }, (res) => res.once('data', () => { req.destroy(); done(); }));
        req.on('error', () => done());
      });
      for (let round = 0; round < 6; round++) {
        const answers = await Promise.all([
          ...requests.map(async (r) => ({ r, res: await get(r.url, { accept: AS_STORED }) })),
          ...requests.map((r) => abandon(r.url).then(() => undefined)),
        ]);
        for (const a of answers) {
          if (!a) continue;
          assert.equal(a.res.status, 200, a.r.file);
          const got = parts(a.res.body, a.res.type);
          assert.equal(got.length, 1);
          assert.equal(sha256(got[0]!.bytes), a.r.sha, `${a.r.url}, round ${round}`);
        }
      }
      const stats = server.wholeFrames().buffers;
      assert.ok(stats.reused > stats.made, `buffers reused (${stats.reused}) more often than made (${stats.made})`);
      assert.equal(server.cache().bytes, 0, 'nothing kept in the cache');
    });
  });

  it('a frame held by a client that stops reading keeps its bytes while other frames of its size are served', async () => {
    // Two instances with 4 MiB frames (more than loopback's socket buffers hold): the first is asked
    // for by a client that stops reading, the second many times meanwhile. Were the first's buffer
    // reused before its answer had been written, its unsent bytes would be the second's.
    const root = mkdtempSync(join(tmpdir(), 'dicomstream-held-frame-'));
    try {
      const pixels = ['a', 'b'].map((name, i) => writeSlice(join(root, `${name}.dcm`), { series: '2.25.4242', instance: i + 1, rows: 1024, columns: 2048 }));
      await withServer({ root, frameCache: 1 }, async (server) => {
        const served = await servedFiles(server.catalogue);
        const [a, b] = ['a.dcm', 'b.dcm'].map((name) => served.find((f) => basename(f.path) === name)!);
        assert.ok(a && b, 'both instances served');
        const frameUrl = (f: typeof a) => `${base(server)}/${uidPath(f!)}/frames/1`;
        const held = new Promise<{ type: string; body: Buffer }>((done, fail) => {
          const req = httpGet(frameUrl(a), { headers: { accept: AS_STORED } }, (res) => {
            const chunks: Buffer[] = [];
            res.once('data', (chunk: Buffer) => {
              chunks.push(chunk);
              res.pause();
              // While this client reads nothing, the other instance's frame is served again and again.
              void (async () => {
                for (let i = 0; i < 6; i++) {
                  const other = await get(frameUrl(b), { accept: AS_STORED });
                  assert.equal(sha256(parts(other.body, other.type)[0]!.bytes), sha256(pixels[1]!));
                }
                res.on('data', (c: Buffer) => chunks.push(c));
                res.once('end', () => done({ type: res.headers['content-type'] ?? '', body: Buffer.concat(chunks) }));
                res.resume();
              })().catch(fail);
            });
          });
          req.on('error', fail);
        });
        const answer = await held;
        assert.equal(sha256(parts(answer.body, answer.type)[0]!.bytes), sha256(pixels[0]!), 'the held frame\'s bytes are its own');
        assert.ok(server.wholeFrames().buffers.reused >= 5, 'the other frame\'s buffer was reused');
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('reads the next instances of a stack ahead when a viewer fetches it in order, and nothing ahead when it jumps around', async () => {
    const root = mkdtempSync(join(tmpdir(), 'dicomstream-stack-'));
    try {
      const pixels = Array.from({ length: 12 }, (_, i) => writeSlice(join(root, `slice${i + 1}.dcm`), { series: '2.25.5151', instance: i + 1, rows: 256, columns: 256 }));
      // No frame cache to speak of: what is not read ahead is read when asked for.
      await withServer({ root, frameCache: 1 }, async (server) => {
        const url = (i: number) => `${base(server)}/studies/2.25.5151.0/series/2.25.5151/instances/2.25.5151.${i + 1}/frames/1`;
        const fetchFrame = async (i: number) => {
          const res = await get(url(i), { accept: AS_STORED });
          assert.equal(res.status, 200);
          assert.equal(sha256(parts(res.body, res.type)[0]!.bytes), sha256(pixels[i]!), `slice ${i + 1}`);
        };
        for (let i = 0; i < 12; i++) await fetchFrame(i);
        const inOrder = server.wholeFrames().ahead;
        // The first request has no predecessor; each later one finds its frame read ahead.
        assert.ok(inOrder.taken >= 10, `frames taken from the readahead: ${inOrder.taken}`);
        assert.ok(inOrder.started <= 11, `no slice past the end read: ${inOrder.started}`);
        for (const i of [11, 2, 9, 0, 8, 1]) await fetchFrame(i);
        assert.equal(server.wholeFrames().ahead.started, inOrder.started, 'jumping around reads nothing ahead');
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('native big-endian frames asked as Explicit VR Little Endian are swapped to the reference decode; compressed ones get 406 naming what is available', async () => {
    // The corpus's big-endian files of 16 and 32 bits are copies of little-endian ones (served instead): alone here.
    const root = mkdtempSync(join(tmpdir(), 'dicomstream-bigendian-'));
    for (const name of ['MR_small_bigendian.dcm', 'rtdose_expb_1frame.dcm']) copyFileSync(join(filesDir, name), join(root, name));
    await withServer({ root }, async (server) => {
      const bigEndian = (await servedFiles(server.catalogue)).filter((f) => f.image.bigEndian && f.image.bitsAllocated > 8);
      assert.equal(bigEndian.length, 2);
      for (const f of bigEndian) {
        const entry = manifest.files.find((m) => m.file === basename(f.path))!;
        const res = await get(`${base(server)}/${uidPath(f)}/frames/1`, { accept: EXPLICIT_LE });
        assert.equal(res.status, 200);
        const [part] = parts(res.body, res.type);
        assert.equal(part!.type, 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1');
        assert.equal(sha256(part!.bytes), entry.frames![0]!.sha256, entry.file);
      }
    });
    rmSync(root, { recursive: true, force: true });
    await withServer({}, async (server) => {
      const jpeg = (await servedFiles(server.catalogue)).find((f) => f.image.transferSyntaxUid === '1.2.840.10008.1.2.4.50')!;
      const refused = await get(`${base(server)}/${uidPath(jpeg)}/frames/1`, { accept: EXPLICIT_LE });
      assert.equal(refused.status, 406);
      assert.match(refused.body.toString(), /type="image\/jpeg"; transfer-syntax=1\.2\.840\.10008\.1\.2\.4\.50/);
      const single = await get(`${base(server)}/${uidPath(jpeg)}/frames/1`, { accept: 'image/jpeg' });
      assert.equal(single.status, 200);
      assert.equal(single.type, 'image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50');
      assert.equal(single.body[0], 0xff);
      assert.equal(single.body[1], 0xd8);
    });
  });

  it('metadata holds every attribute with its VR, the Transfer Syntax UID, and bulk data URIs that return the pixel data', async () => {
    await withServer({}, async (server) => {
      const f = (await servedFiles(server.catalogue)).find((x) => x.path.endsWith('CT_small.dcm'))!;
      const [ds] = await json(`${base(server)}/${uidPath(f)}/metadata`);
      assert.equal(value(ds!, '00020010'), f.image.transferSyntaxUid);
      assert.deepEqual(ds!['00280010'], { vr: 'US', Value: [f.image.rows] });
      assert.equal(value(ds!, '00080018'), f.image.sopInstanceUid);
      assert.equal(ds!['00280030']?.vr, 'DS');
      assert.equal(typeof ds!['00280030']?.Value?.[0], 'number');
      const pixel = ds!['7FE00010']!;
      assert.ok(pixel.BulkDataURI, 'Pixel Data as a bulk data URI');
      const bulk = await get(pixel.BulkDataURI, { accept: AS_STORED });
      assert.equal(bulk.status, 200);
      const entry = manifest.files.find((m) => m.file === 'CT_small.dcm')!;
      assert.equal(sha256(parts(bulk.body, bulk.type)[0]!.bytes), entry.pixel_data!.stored_frame_sha256![0]);
      // The series' metadata is its instances' metadata.
      const series = await json(`${base(server)}/studies/${f.study.studyInstanceUid}/series/${f.series.seriesInstanceUid}/metadata`);
      assert.ok(series.some((x) => value(x, '00080018') === f.image.sopInstanceUid));
    });
  });

  it('metadata and QIDO decode text by Specific Character Set and split person names into their groups', async () => {
    await withServer({}, async (server) => {
      const f = (await servedFiles(server.catalogue)).find((x) => x.path.endsWith('chrX1.dcm'));
      if (!f) return assert.fail('chrX1.dcm is served');
      const [ds] = await json(`${base(server)}/${uidPath(f)}/metadata`);
      assert.deepEqual(ds!['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小東' }] });
      const studies = await json(`${base(server)}/studies?PatientName=${encodeURIComponent('王*')}`);
      assert.deepEqual(studies.map((s) => value(s, '0020000D')), [f.study.studyInstanceUid]);
    });
  });

  it('stored instances come back as the files, byte for byte', async () => {
    await withServer({}, async (server) => {
      const f = (await servedFiles(server.catalogue)).find((x) => x.path.endsWith('MR_small.dcm'))!;
      const multipart = await get(`${base(server)}/${uidPath(f)}`, { accept: 'multipart/related; type="application/dicom"' });
      assert.equal(multipart.status, 200);
      const [part] = parts(multipart.body, multipart.type);
      assert.equal(sha256(part!.bytes), sha256(readFileSync(f.path)));
      const bare = await get(`${base(server)}/${uidPath(f)}`, { accept: 'application/dicom' });
      assert.equal(sha256(bare.body), sha256(readFileSync(f.path)));
      const wrongSyntax = await get(`${base(server)}/${uidPath(f)}`, { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' });
      assert.equal(wrongSyntax.status, 406);
    });
  });

  it('QIDO-RS matches names case-insensitively with wildcards, dates by range, UID lists and modalities, and pages', async () => {
    await withServer({}, async (server) => {
      const studies = server.catalogue.studyEntries();
      const all = await json(`${base(server)}/studies`);
      assert.equal(all.length, studies.length);
      for (const s of all) {
        const entry = studies.find((e) => e.facts.studyInstanceUid === value(s, '0020000D'))!;
        assert.equal(value(s, '00201208'), entry.summary.numberOfInstances);
        assert.equal(value(s, '00201206'), entry.series.length);
      }
      const named = studies.find((s) => /^[A-Za-z]{3}/.test(s.facts.patientName))!;
      const prefix = named.facts.patientName.slice(0, 2).toLowerCase();
      const byName = await json(`${base(server)}/studies?PatientName=${prefix}*`);
      assert.deepEqual(byName.map((s) => value(s, '0020000D')).sort(),
        studies.filter((s) => s.facts.patientName.toLowerCase().startsWith(prefix)).map((s) => s.facts.studyInstanceUid).sort());
      const dated = studies.filter((s) => s.facts.studyDate >= '20000101' && s.facts.studyDate <= '20151231').map((s) => s.facts.studyInstanceUid);
      assert.deepEqual((await json(`${base(server)}/studies?StudyDate=20000101-20151231`)).map((s) => value(s, '0020000D')).sort(), dated.sort());
      const two = studies.slice(0, 2).map((s) => s.facts.studyInstanceUid);
      assert.deepEqual((await json(`${base(server)}/studies?StudyInstanceUID=${two.join(',')}`)).map((s) => value(s, '0020000D')).sort(), [...two].sort());
      const ct = await json(`${base(server)}/studies?ModalitiesInStudy=CT`);
      assert.ok(ct.length > 0 && ct.every((s) => (s['00080061']!.Value as string[]).includes('CT')));
      const page = await json(`${base(server)}/studies?limit=3&offset=2`);
      assert.deepEqual(page.map((s) => value(s, '0020000D')), all.slice(2, 5).map((s) => value(s, '0020000D')));
      // Series and instances, at the top and under a study.
      const study = studies.find((s) => s.series.length > 0)!;
      const series = await json(`${base(server)}/studies/${study.facts.studyInstanceUid}/series`);
      assert.deepEqual(series.map((s) => value(s, '0020000E')), study.series.map((s) => s.facts.seriesInstanceUid));
      const instances = await json(`${base(server)}/studies/${study.facts.studyInstanceUid}/series/${study.series[0]!.facts.seriesInstanceUid}/instances`);
      assert.equal(instances.length, study.series[0]!.summary.numberOfInstances);
      assert.ok(instances.every((i) => typeof value(i, '00280010') === 'number' && value(i, '00080016')));
      const everyInstance = await json(`${base(server)}/instances`);
      assert.equal(everyInstance.length, server.catalogue.instanceCount);
      const withField = await json(`${base(server)}/series?includefield=SeriesDate,00080031`);
      assert.ok(withField.every((s) => '00080021' in s && '00080031' in s && '00100010' in s));
    });
  });

  it('refuses bad queries with 400 and a message, unknown resources with 404, and carries on', async () => {
    await withServer({}, async (server) => {
      const refusals: Array<[string, number, RegExp]> = [
        ['studies?NoSuchThing=1', 400, /unknown parameter/],
        ['studies?StudyDate=2024-01-01', 400, /not a date/],
        ['studies?limit=-1', 400, /whole number/],
        ['studies?StudyInstanceUID=abc', 400, /not a UID/],
        ['studies?Modality=CT', 400, /series attribute/],
        ['studies?PatientWeight=70', 400, /not supported/],
        ['studies?includefield=Nonsense', 400, /unknown attribute/],
        ['studies/1.2.3/series', 404, /no study/],
        ['studies/1.2.3/metadata', 404, /no study/],
        ['studies/%E0%A4%A/series', 400, /percent-encoding/],
        ['nothing', 404, /no such/],
      ];
      for (const [path, status, message] of refusals) {
        const res = await get(`${base(server)}/${path}`);
        assert.equal(res.status, status, path);
        assert.match(res.body.toString(), message, path);
      }
      const f = (await servedFiles(server.catalogue))[0]!;
      assert.equal((await get(`${base(server)}/${uidPath(f)}/frames/0`)).status, 400);
      assert.equal((await get(`${base(server)}/${uidPath(f)}/frames/99999`)).status, 404);
      assert.equal((await fetch(`${base(server)}/studies`, { method: 'DELETE' })).status, 405);
      assert.equal((await json(`${base(server)}/studies`)).length, server.catalogue.studyCount);
    });
  });

  it('applies the stream\'s access policy: no token 401, a JWT\'s studies claim limits QIDO and hides other studies as unknown', async () => {
    const secret = 'a test secret of enough length for HS256';
    await withServer({ access: { jwt: { secret }, origins: ['https://viewer.example'] } }, async (server) => {
      const [allowed, hidden] = server.catalogue.studyEntries().map((s) => s.facts.studyInstanceUid);
      const token = await new SignJWT({ studies: [allowed] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
      const auth = { authorization: `Bearer ${token}` };
      const none = await get(`${base(server)}/studies`);
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer');
      assert.deepEqual((await json(`${base(server)}/studies`, auth)).map((s) => value(s, '0020000D')), [allowed]);
      assert.equal((await json(`${base(server)}/instances`, auth)).length, server.catalogue.studyEntry(allowed!)!.summary.numberOfInstances);
      const other = await get(`${base(server)}/studies/${hidden}/metadata`, auth);
      const unknown = await get(`${base(server)}/studies/1.2.3.4/metadata`, auth);
      assert.equal(other.status, 404);
      assert.equal(other.body.toString().replace(hidden!, 'X'), unknown.body.toString().replace('1.2.3.4', 'X'));
      // CORS: the allowlist, and preflight.
      const preflight = await fetch(`${base(server)}/studies`, { method: 'OPTIONS', headers: { origin: 'https://viewer.example', 'access-control-request-headers': 'authorization' } });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://viewer.example');
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/i);
      const cross = await get(`${base(server)}/studies`, { ...auth, origin: 'https://viewer.example' });
      assert.equal(cross.headers.get('access-control-allow-origin'), 'https://viewer.example');
      assert.equal((await get(`${base(server)}/studies`, { ...auth, origin: 'https://evil.example' })).status, 403);
    });
  });

  it('dicomweb-client (the reference JavaScript client) searches, reads metadata and retrieves frames', async () => {
    // dicomweb-client is written for browsers: in Node it runs over xhr2, an XMLHttpRequest on Node's http.
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest ??= XMLHttpRequest;
    await withServer({}, async (server) => {
      // Its type declarations make every option required: only what these calls use is given.
      const client = new api.DICOMwebClient({ url: base(server) } as ConstructorParameters<typeof api.DICOMwebClient>[0]);
      const studies = (await client.searchForStudies({} as never)) as Json[];
      assert.equal(studies.length, server.catalogue.studyCount);
      const f = (await servedFiles(server.catalogue)).find((x) => x.path.endsWith('CT_small.dcm'))!;
      const ids = { studyInstanceUID: f.study.studyInstanceUid, seriesInstanceUID: f.series.seriesInstanceUid, sopInstanceUID: f.image.sopInstanceUid };
      const series = (await client.searchForSeries({ studyInstanceUID: ids.studyInstanceUID } as never)) as Json[];
      assert.ok(series.some((s) => value(s, '0020000E') === ids.seriesInstanceUID));
      const metadata = (await client.retrieveInstanceMetadata(ids as never)) as Json[];
      assert.equal(value(metadata[0]!, '00080018'), ids.sopInstanceUID);
      const frames = (await client.retrieveInstanceFrames({ ...ids, frameNumbers: [1] } as never)) as ArrayBuffer[];
      const entry = manifest.files.find((m) => m.file === 'CT_small.dcm')!;
      assert.equal(sha256(new Uint8Array(frames[0]!)), entry.pixel_data!.stored_frame_sha256![0]);
      const instance = (await client.retrieveInstance(ids as never)) as ArrayBuffer;
      assert.equal(sha256(new Uint8Array(instance)), sha256(readFileSync(f.path)));
    });
  });
});
