// QIDO-RS latency on a large archive: `/studies?PatientName=A*` (and an exact UID, and a study's
// instances) against catalogues of 10,000 and 100,000 instances, over real HTTP on 127.0.0.1.
// The catalogue is made of synthetic index records (10 instances a series, 1 series a study:
// 1,000 and 10,000 studies), the same records a saved index holds, so that the search, not the
// parsing of 100,000 files, is measured. Part of `npm run bench:dicomweb`.
// Run from the project root: `node --import tsx bench/qido.ts [-- --sizes 10000,100000]`.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { AccessControl } from '../server/access.js';
import { dicomWebRoutes } from '../server/dicomweb/routes.js';
import { FrameSource } from '../server/files/frame-source.js';
import { Catalogue } from '../server/index/catalogue.js';
import type { IndexedFile } from '../server/index/index-file.js';
import { createLogger } from '../server/log.js';
import type { ImageAttributes } from '../shared/protocol.js';
import { fmt, percentile } from './common.js';

const INSTANCES_PER_STUDY = 10;
const REQUESTS = 200;
const TARGET_P50_MS = 20;
const NAMES = ['Adams', 'Baker', 'Clark', 'Davis', 'Evans', 'Flores', 'Garcia', 'Harris', 'Ito', 'Jones', 'King', 'Lopez', 'Moore',
  'Nguyen', 'Ortiz', 'Patel', 'Quinn', 'Reyes', 'Smith', 'Tanaka', 'Usman', 'Vega', 'Wang', 'Xu', 'Young', 'Zhang'];

/** `instances` index records: studies of one series of INSTANCES_PER_STUDY instances, names cycling through the alphabet. */
function archive(instances: number): IndexedFile[] {
  const files: IndexedFile[] = [];
  for (let i = 0; i < instances; i++) {
    const s = Math.floor(i / INSTANCES_PER_STUDY);
    const study = `1.2.826.0.1.3680043.9.7${s}`;
    files.push({
      path: `/archive/${s}/${i}.dcm`, size: 1, mtimeMs: 0,
      study: {
        studyInstanceUid: study, patientName: `${NAMES[s % NAMES.length]}^Patient${s}`, patientId: `P${s}`, studyDate: `20${String(10 + (s % 15)).padStart(2, '0')}0101`,
        studyTime: '120000', studyDescription: 'CT CHEST', accessionNumber: `A${s}`, patientBirthDate: '19700101', patientSex: s % 2 ? 'F' : 'M',
        studyId: String(s), referringPhysicianName: '',
      },
      series: { seriesInstanceUid: `${study}.1`, modality: 'CT', seriesDescription: 'AXIAL', seriesNumber: 1, seriesDate: '', seriesTime: '' },
      image: { sopInstanceUid: `${study}.1.${i}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', instanceNumber: i % INSTANCES_PER_STUDY + 1, numberOfFrames: 1, rows: 512, columns: 512, bitsAllocated: 16, imagePositionPatient: [], imageOrientationPatient: [], transferSyntaxUid: '1.2.840.10008.1.2.1' } as unknown as ImageAttributes,
      frames: [{ segments: [0, 1], length: 1, bitOffset: 0 }], source: 'file', warnings: [],
    });
  }
  return files;
}

async function timed(url: string): Promise<{ ms: number; results: number }> {
  const start = performance.now();
  const res = await fetch(url, { headers: { accept: 'application/dicom+json' } });
  const body = await res.json() as unknown[];
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return { ms: performance.now() - start, results: body.length };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10000,100000' } } });
  const sizes = values.sizes!.split(',').map(Number);
  const frames = new FrameSource({ root: '/', followSymlinks: true, maxOpenFiles: 8, frameCacheBytes: 1, readConcurrency: 1, readahead: 0 });
  const lines = ['| instances (studies) | query | results | p50 ms | p99 ms | target p50 |', '|---|---|---:|---:|---:|---|'];
  let failed = false;
  for (const size of sizes) {
    const built = performance.now();
    const catalogue = Catalogue.fromFiles(archive(size));
    console.log(`${size} instances: catalogue of ${catalogue.studyCount} studies built in ${fmt(performance.now() - built, 0)} ms`);
    const routes = dicomWebRoutes({ base: '/dicomweb', catalogue: () => catalogue, frames, access: new AccessControl({}, '127.0.0.1'), log: createLogger('silent') });
    const server = createServer((req, res) => { if (!routes(req, res)) { res.writeHead(404); res.end(); } });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const root = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicomweb`;
    const someStudy = catalogue.studyEntries()[Math.floor(catalogue.studyCount / 2)]!.facts.studyInstanceUid;
    const queries = ['/studies?PatientName=A*', `/studies?StudyInstanceUID=${someStudy}`, `/studies/${someStudy}/instances`, '/studies?PatientName=a*&limit=101&fuzzymatching=true'];
    for (const q of queries) {
      await timed(root + q); // warm-up (loads the dictionary, opens the series)
      const runs = [];
      for (let i = 0; i < REQUESTS; i++) runs.push(await timed(root + q));
      const p50 = percentile(runs.map((r) => r.ms), 0.5);
      const main = q === '/studies?PatientName=A*';
      if (main && p50 > TARGET_P50_MS) failed = true;
      lines.push(`| ${size} (${catalogue.studyCount}) | \`${q.length > 60 ? `${q.slice(0, 57)}...` : q}\` | ${runs[0]!.results} | ${fmt(p50, 2)} | ${fmt(percentile(runs.map((r) => r.ms), 0.99), 2)} | ${main ? `<= ${TARGET_P50_MS} ms: ${p50 <= TARGET_P50_MS ? 'met' : 'NOT met'}` : ''} |`);
    }
    await new Promise<void>((ok) => server.close(() => ok()));
  }
  await frames.close();
  console.log(`\nQIDO-RS latency, ${REQUESTS} requests each after one warm-up, one client on 127.0.0.1:\n\n${lines.join('\n')}`);
  if (failed) process.exitCode = 1;
}

await main();
