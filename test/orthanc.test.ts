// Interoperability with Orthanc + its DICOMweb plugin (Debian packages `orthanc`,
// `orthanc-dicomweb`, installed by .ci/run): both servers hold the same corpus files and get the
// same QIDO-RS and WADO-RS requests (test/helpers/orthanc-compare.ts, run in a loopback-only
// network namespace because Orthanc listens on every interface). They must give the same
// studies, series and instances, the same value for every attribute both return, and the same
// frame bytes. What the standard leaves open is normalised first: order, empty vs absent, the
// server's own RetrieveURL root; the differences listed in the README are checked to be the only ones.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { filesDir } from './helpers/corpus.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Native, JPEG 2000, RLE multi-frame, 32-bit multi-frame dose, UTF-8 names, and an MR: one study each. */
const FILES = ['CT_small.dcm', 'MR_small.dcm', 'chrX1.dcm', 'JPEG2000.dcm', 'SC_rgb_rle_2frame.dcm', 'rtdose.dcm'];
type Element = { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string };
type Json = Record<string, Element>;
interface Answers { answers: Array<{ path: string; ours: Json[]; orthanc: Json[] }>; frames: Array<{ path: string; ours: string[]; orthanc: string[] }> }

/**
 * Attributes whose values differ by design (README, "DICOMweb: differences from Orthanc"):
 * SpecificCharacterSet (both answer UTF-8 JSON; Orthanc names its storage encoding).
 */
const DIFFERENT_BY_DESIGN = new Set(['00080005']);

function compareRuns(): Answers {
  const run = spawnSync('unshare', ['-n', '--', 'sh', '-c', 'PATH="$PATH:/usr/sbin:/sbin"; ip link set lo up || exit 125; exec "$@"', 'sh',
    process.execPath, '--import', 'tsx', join(here, 'helpers', 'orthanc-compare.ts'), ...FILES.map((f) => join(filesDir, f))], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, `the comparison run failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Answers;
}

/** A value as compared: strings trimmed, numbers as numbers, bulk data and URLs by their path after the DICOMweb root. */
function normalised(e: Element | undefined): string | undefined {
  if (!e) return undefined;
  if (e.BulkDataURI || e.InlineBinary) return 'binary';
  const values = (e.Value ?? []).map((v) => (typeof v === 'string' ? v.trim().replace(/^https?:\/\/[^/]+\/dicom-?web/, '') : v));
  if (values.length === 0 || values.every((v) => v === null || v === '')) return undefined;
  return JSON.stringify(values, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== '' && x !== undefined).sort()) : v));
}

/** Every attribute both give a value for, where the values differ (nested sequences compared whole). */
function differences(ours: Json, theirs: Json, where: string): string[] {
  const out: string[] = [];
  for (const tag of Object.keys(ours)) {
    if (DIFFERENT_BY_DESIGN.has(tag)) continue;
    const a = normalised(ours[tag]);
    const b = normalised(theirs[tag]);
    if (a !== undefined && b !== undefined && a !== b) out.push(`${where} ${tag}: ours ${a.slice(0, 200)} Orthanc ${b.slice(0, 200)}`);
  }
  return out;
}

const uidOf = (ds: Json, tag: string) => ds[tag]?.Value?.[0] as string;

describe('Orthanc interoperability (same files, same requests)', () => {
  const result = compareRuns();

  it('QIDO-RS: the same studies, series and instances, with the same values', () => {
    const keys: Record<string, string> = { '/studies': '0020000D', '/series': '0020000E', '/instances': '00080018', '/studies?PatientName=*a*': '0020000D' };
    for (const { path, ours, orthanc } of result.answers.filter((a) => keys[a.path])) {
      const key = keys[path]!;
      assert.deepEqual(ours.map((x) => uidOf(x, key)).sort(), orthanc.map((x) => uidOf(x, key)).sort(), path);
      const diffs = ours.flatMap((x) => differences(x, orthanc.find((y) => uidOf(y, key) === uidOf(x, key))!, `${path} ${uidOf(x, key)}`));
      assert.deepEqual(diffs, [], diffs.join('\n'));
    }
  });

  it('WADO-RS metadata: the same value for every attribute both return', () => {
    const metadata = result.answers.filter((a) => a.path.endsWith('/metadata'));
    assert.equal(metadata.length, FILES.length);
    for (const { path, ours, orthanc } of metadata) {
      assert.equal(ours.length, 1);
      assert.equal(orthanc.length, 1);
      const shared = Object.keys(ours[0]!).filter((t) => t in orthanc[0]!);
      assert.ok(shared.length >= 20, `${path}: ${shared.length} attributes in common`);
      const diffs = differences(ours[0]!, orthanc[0]!, path);
      assert.deepEqual(diffs, [], diffs.join('\n'));
    }
  });

  it('WADO-RS frames as stored: the same bytes', () => {
    assert.equal(result.frames.length, FILES.length);
    for (const f of result.frames) {
      assert.ok(f.ours.length >= 1 && !f.ours[0]!.startsWith('HTTP'), `${f.path}: ${f.ours[0]}`);
      assert.deepEqual(f.ours, f.orthanc, f.path);
    }
  });
});
