// A tree of many small DICOM files (studies / series / instances of 64×64 16-bit MR-like images),
// written by the project's own writer: for the index benchmark and tests of large folders.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { uidFromName, writeDicom } from './dicom-writer.js';

export interface TreeOptions {
  /** Instances per series. */
  perSeries?: number;
  /** Series per study. */
  seriesPerStudy?: number;
  /** Rows and columns of each image. */
  size?: number;
  /** Names are salted with this, so two trees have different UIDs. */
  salt?: string;
}

/** One small image file's bytes. */
export function smallImage(study: number, series: number, instance: number, options: TreeOptions = {}): Uint8Array {
  const size = options.size ?? 64;
  const salt = options.salt ?? 'tree';
  const pixels = new Uint8Array(size * size * 2);
  for (let i = 0; i < pixels.length; i += 2) pixels[i] = (i / 2 + instance * 7 + series) & 0xff;
  return writeDicom([
    { tag: 0x00080016, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.4' },
    { tag: 0x00080018, vr: 'UI', value: uidFromName(`${salt}/${study}/${series}/${instance}`) },
    { tag: 0x00080020, vr: 'DA', value: `2026${String(1 + (study % 12)).padStart(2, '0')}01` },
    { tag: 0x00080060, vr: 'CS', value: 'MR' },
    { tag: 0x0008103e, vr: 'LO', value: `series ${series}` },
    { tag: 0x00100010, vr: 'PN', value: `TREE^PATIENT${study}` },
    { tag: 0x00100020, vr: 'LO', value: `T${study}` },
    { tag: 0x0020000d, vr: 'UI', value: uidFromName(`${salt}/${study}`) },
    { tag: 0x0020000e, vr: 'UI', value: uidFromName(`${salt}/${study}/${series}`) },
    { tag: 0x00200011, vr: 'IS', value: series + 1 },
    { tag: 0x00200013, vr: 'IS', value: instance + 1 },
    { tag: 0x00280002, vr: 'US', value: 1 }, { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: size }, { tag: 0x00280011, vr: 'US', value: size },
    { tag: 0x00280100, vr: 'US', value: 16 }, { tag: 0x00280101, vr: 'US', value: 12 }, { tag: 0x00280102, vr: 'US', value: 11 },
    { tag: 0x00280103, vr: 'US', value: 0 },
    { tag: 0x7fe00010, vr: 'OW', value: pixels },
  ]);
}

/** Writes `files` small images under `dir` as study-N/series-M/K.dcm; returns their paths. */
export function writeTree(dir: string, files: number, options: TreeOptions = {}): string[] {
  const perSeries = options.perSeries ?? 50;
  const seriesPerStudy = options.seriesPerStudy ?? 4;
  const paths: string[] = [];
  for (let n = 0; n < files; n++) {
    const instance = n % perSeries;
    const seriesIndex = Math.floor(n / perSeries);
    const study = Math.floor(seriesIndex / seriesPerStudy);
    const series = seriesIndex % seriesPerStudy;
    const folder = join(dir, `study-${study}`, `series-${series}`);
    if (instance === 0) mkdirSync(folder, { recursive: true });
    const path = join(folder, `${instance}.dcm`);
    writeFileSync(path, smallImage(study, series, instance, options));
    paths.push(path);
  }
  return paths;
}
