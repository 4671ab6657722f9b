// The attributes QIDO-RS matches on and answers with, at each level (PS3.18 Tables 10.6.3-3 to -5
// and 10.6.1-5), and where each one's value lies in the index: a study's and a series' facts in
// the catalogue, an instance's image attributes in its series index. No file is read.
import type { ImageAttributes } from '../../shared/protocol.js';
import type { SeriesEntry, StudyEntry } from '../index/catalogue.js';

export type Level = 'study' | 'series' | 'instance';

/** One answer's place in the catalogue: the instance level has all three. */
export interface Row {
  study: StudyEntry;
  series?: SeriesEntry;
  instance?: ImageAttributes;
}

/** How a search parameter on the attribute is matched (qido-match.ts). */
export type MatchKind = 'uid' | 'person-name' | 'text' | 'date' | 'time' | 'integer' | 'modalities';

export interface QidoAttribute {
  tag: number;
  keyword: string;
  vr: string;
  level: Level;
  match?: MatchKind;
  /** The value(s) as DICOM text (multiple values joined by backslashes); numbers as numbers. */
  value(row: Row, urls: RetrieveUrls): string | number;
  /** Answered only when `includefield` names it (or `all`). */
  optional?: boolean;
}

/** Where the answers' RetrieveURL (0008,1190) point. */
export interface RetrieveUrls { study(uid: string): string; series(study: string, uid: string): string; instance(study: string, series: string, uid: string): string }

const study = (row: Row) => row.study.facts;
const series = (row: Row) => row.series!.facts;
const image = (row: Row) => row.instance!;

const a = (tag: number, keyword: string, vr: string, level: Level, value: QidoAttribute['value'], match?: MatchKind, optional?: boolean): QidoAttribute =>
  ({ tag, keyword, vr, level, value, match, optional });

export const QIDO_ATTRIBUTES: readonly QidoAttribute[] = [
  // Study level.
  a(0x00080005, 'SpecificCharacterSet', 'CS', 'study', () => 'ISO_IR 192'),
  a(0x00080020, 'StudyDate', 'DA', 'study', (r) => study(r).studyDate, 'date'),
  a(0x00080030, 'StudyTime', 'TM', 'study', (r) => study(r).studyTime, 'time'),
  a(0x00080050, 'AccessionNumber', 'SH', 'study', (r) => study(r).accessionNumber, 'text'),
  a(0x00080056, 'InstanceAvailability', 'CS', 'study', () => 'ONLINE'),
  a(0x00080061, 'ModalitiesInStudy', 'CS', 'study', (r) => r.study.summary.modalities.join('\\'), 'modalities'),
  a(0x00080090, 'ReferringPhysicianName', 'PN', 'study', (r) => study(r).referringPhysicianName, 'person-name'),
  a(0x00081030, 'StudyDescription', 'LO', 'study', (r) => study(r).studyDescription, 'text'),
  a(0x00100010, 'PatientName', 'PN', 'study', (r) => study(r).patientName, 'person-name'),
  a(0x00100020, 'PatientID', 'LO', 'study', (r) => study(r).patientId, 'text'),
  a(0x00100030, 'PatientBirthDate', 'DA', 'study', (r) => study(r).patientBirthDate, 'date'),
  a(0x00100040, 'PatientSex', 'CS', 'study', (r) => study(r).patientSex, 'text'),
  a(0x0020000d, 'StudyInstanceUID', 'UI', 'study', (r) => study(r).studyInstanceUid, 'uid'),
  a(0x00200010, 'StudyID', 'SH', 'study', (r) => study(r).studyId, 'text'),
  a(0x00201206, 'NumberOfStudyRelatedSeries', 'IS', 'study', (r) => r.study.series.length),
  a(0x00201208, 'NumberOfStudyRelatedInstances', 'IS', 'study', (r) => r.study.summary.numberOfInstances),
  // Series level.
  a(0x00080021, 'SeriesDate', 'DA', 'series', (r) => series(r).seriesDate, 'date', true),
  a(0x00080031, 'SeriesTime', 'TM', 'series', (r) => series(r).seriesTime, 'time', true),
  a(0x00080060, 'Modality', 'CS', 'series', (r) => series(r).modality, 'text'),
  a(0x0008103e, 'SeriesDescription', 'LO', 'series', (r) => series(r).seriesDescription, 'text'),
  a(0x0020000e, 'SeriesInstanceUID', 'UI', 'series', (r) => series(r).seriesInstanceUid, 'uid'),
  a(0x00200011, 'SeriesNumber', 'IS', 'series', (r) => series(r).seriesNumber, 'integer'),
  a(0x00201209, 'NumberOfSeriesRelatedInstances', 'IS', 'series', (r) => r.series!.summary.numberOfInstances),
  // Instance level.
  a(0x00080016, 'SOPClassUID', 'UI', 'instance', (r) => image(r).sopClassUid, 'uid'),
  a(0x00080018, 'SOPInstanceUID', 'UI', 'instance', (r) => image(r).sopInstanceUid, 'uid'),
  // The index keeps 0 for an absent Instance Number: answered empty rather than as a number the file does not hold.
  a(0x00200013, 'InstanceNumber', 'IS', 'instance', (r) => image(r).instanceNumber || '', 'integer'),
  a(0x00280008, 'NumberOfFrames', 'IS', 'instance', (r) => image(r).numberOfFrames),
  a(0x00280010, 'Rows', 'US', 'instance', (r) => image(r).rows),
  a(0x00280011, 'Columns', 'US', 'instance', (r) => image(r).columns),
  a(0x00280100, 'BitsAllocated', 'US', 'instance', (r) => image(r).bitsAllocated),
];

/** RetrieveURL (0008,1190) at each level: the study's, series' or instance's WADO-RS address. */
export const RETRIEVE_URL = 0x00081190;

export function retrieveUrl(level: Level, row: Row, urls: RetrieveUrls): string {
  const s = row.study.facts.studyInstanceUid;
  if (level === 'study') return urls.study(s);
  const se = row.series!.facts.seriesInstanceUid;
  return level === 'series' ? urls.series(s, se) : urls.instance(s, se, row.instance!.sopInstanceUid);
}

const byKeyword = new Map(QIDO_ATTRIBUTES.map((x) => [x.keyword, x]));
const byTag = new Map(QIDO_ATTRIBUTES.map((x) => [x.tag, x]));

/** The attribute a parameter name (keyword or 8 hex digits) names, if QIDO knows it. */
export function qidoAttribute(name: string): QidoAttribute | undefined {
  if (/^[0-9a-f]{8}$/i.test(name)) return byTag.get(parseInt(name, 16) >>> 0);
  return byKeyword.get(name);
}
