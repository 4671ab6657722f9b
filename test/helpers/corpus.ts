// The conformance corpus as the tests see it: the manifest's facts, and what the server should do
// with each file. DICOMSTREAM_CORPUS points the tests at another corpus of the same layout.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const corpusDir = process.env.DICOMSTREAM_CORPUS ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'corpus');
export const filesDir = join(corpusDir, 'files');

export interface ManifestFile {
  file: string;
  gzip_wrapped: boolean;
  sop_instance_uid: string | null;
  series_instance_uid: string | null;
  study_instance_uid: string | null;
  transfer_syntax_uid: string | null;
  transfer_syntax_effective: string | null;
  is_image: boolean;
  rows: number | null;
  columns: number | null;
  bits_allocated: number | null;
  bits_stored: number | null;
  high_bit: number | null;
  pixel_representation: number | null;
  samples_per_pixel: number | null;
  photometric_interpretation: string | null;
  planar_configuration: number | null;
  rescale_slope: number | string | null;
  rescale_intercept: number | string | null;
  window_center: number | number[] | null;
  window_width: number | number[] | null;
  edge_cases: string[];
  pixel_data: {
    present?: boolean;
    encapsulated?: boolean;
    frames_effective?: number;
    stored_frame_sha256?: string[];
  } | null;
  frames?: Array<{ frame: number; sha256: string }>;
  /** The reference decode: colour_converted when decoding turned YBR into RGB (lossy JPEG, J2K MCT). */
  reference?: { colour_converted?: boolean } | null;
}

export const manifest: { files: ManifestFile[] } = JSON.parse(readFileSync(join(corpusDir, 'manifest.json'), 'utf8'));

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export type Expectation =
  | { outcome: 'served'; hashes: string[]; kind: 'stored' | 'inflated' }
  | { outcome: 'skipped'; codes: string[] };

/**
 * What the server does with a file, from the manifest: frames with a stored hash are served as
 * stored; deflated images are served from the inflated data set (which equals the reference
 * decode for native data); gzip files, images without a SOP Instance UID and files without
 * servable frames are reported and skipped.
 */
export function expectation(f: ManifestFile): Expectation {
  const stored = f.pixel_data?.stored_frame_sha256 ?? [];
  if (f.gzip_wrapped) return { outcome: 'skipped', codes: ['GZIP'] };
  if (f.is_image && !f.sop_instance_uid) return { outcome: 'skipped', codes: ['NO_UID'] };
  if (f.edge_cases.includes('deflated') && f.is_image && f.frames?.length) {
    return { outcome: 'served', hashes: f.frames.map((x) => x.sha256), kind: 'inflated' };
  }
  if (stored.length && f.sop_instance_uid) return { outcome: 'served', hashes: stored, kind: 'stored' };
  return { outcome: 'skipped', codes: ['NOT_DICOM', 'CORRUPT', 'NO_PIXEL_DATA', 'NOT_AN_IMAGE', 'TRUNCATED', 'UNSUPPORTED'] };
}

/**
 * For every served SOP Instance UID, per frame (0-based), the sha256 any served copy of that
 * instance may have (the same image can be stored in several files).
 */
export function servedFrameHashes(): Map<string, Set<string>[]> {
  const byUid = new Map<string, Set<string>[]>();
  for (const f of manifest.files) {
    const e = expectation(f);
    if (e.outcome !== 'served' || !f.sop_instance_uid) continue;
    const list = byUid.get(f.sop_instance_uid) ?? [];
    e.hashes.forEach((h, i) => { (list[i] ??= new Set()).add(h); });
    byUid.set(f.sop_instance_uid, list);
  }
  return byUid;
}

/** Manifest numbers are written as in the file: a list for multi-valued, sometimes a string. */
export function firstValue(v: number | string | number[] | null): number | undefined {
  if (v === null || v === undefined) return undefined;
  const x = Array.isArray(v) ? v[0] : v;
  const n = typeof x === 'string' ? Number.parseFloat(x) : x;
  return Number.isFinite(n) ? n : undefined;
}
