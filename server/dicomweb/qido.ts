// QIDO-RS searches (PS3.18 §10.6): the query string read into matchers, the catalogue walked
// study -> series -> instance with them (visible studies only, series indexes opened only below
// matching series and only as far as the page needs), and the rows written as DICOM JSON.
import type { Catalogue, SeriesEntry, StudyEntry } from '../index/catalogue.js';
import type { Dictionary } from './dictionary.js';
import { numberElement, sortedDataSet, tagKey, textElement, type DicomJsonDataSet } from './dicom-json.js';
import {
  QIDO_ATTRIBUTES, RETRIEVE_URL, qidoAttribute, retrieveUrl, type Level, type QidoAttribute, type RetrieveUrls, type Row,
} from './qido-attributes.js';
import { QueryError, dateMatcher, textMatcher, timeMatcher, uidListMatcher, type Matcher } from './qido-match.js';

/** Answers at most this many rows; more matches: a Warning header says so (PS3.18 §8.3.4.4). */
export const QIDO_MAX_RESULTS = 1000;

const LEVELS: Level[] = ['study', 'series', 'instance'];
const depth = (level: Level) => LEVELS.indexOf(level);

/** A search's scope in the path: `/studies/{study}/series`, `/studies/{study}/series/{series}/instances`. */
export interface Scope { studyInstanceUid?: string; seriesInstanceUid?: string }

interface Filter { attribute: QidoAttribute; matches: Matcher; /** The parameter's value as given. */ value: string }

export interface QidoQuery {
  level: Level;
  scope: Scope;
  filters: Filter[];
  offset: number;
  limit: number;
  /** Attributes answered besides the level's defaults. */
  include: 'all' | Set<number>;
}

const CONTROL = new Set(['limit', 'offset', 'includefield', 'fuzzymatching']);

function count(name: string, value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new QueryError(`${name} must be a whole number, not "${value.slice(0, 40)}"`);
  return Number(value);
}

/** Reads the query string of a search at `level`; throws QueryError (answered 400) naming what is wrong. */
export function parseQuery(params: URLSearchParams, level: Level, scope: Scope, dictionary: Dictionary): QidoQuery {
  const fuzzy = params.get('fuzzymatching');
  if (fuzzy !== null && fuzzy !== 'true' && fuzzy !== 'false') throw new QueryError(`fuzzymatching must be true or false, not "${fuzzy.slice(0, 40)}"`);
  const query: QidoQuery = {
    level, scope, filters: [],
    offset: params.has('offset') ? count('offset', params.get('offset')!) : 0,
    limit: Math.min(QIDO_MAX_RESULTS, params.has('limit') ? count('limit', params.get('limit')!) : QIDO_MAX_RESULTS),
    include: new Set(),
  };
  const seen = new Map<QidoAttribute, string[]>();
  for (const [name, value] of params) {
    if (CONTROL.has(name)) {
      if (name === 'includefield') addIncludes(query, value, dictionary);
      continue;
    }
    const attribute = qidoAttribute(name);
    if (!attribute) {
      const known = /^[0-9a-f]{8}$/i.test(name) || dictionary.tagOf(name) !== undefined;
      throw new QueryError(known
        ? `matching on ${name} is not supported; the attributes matched are ${matchable(level).join(', ')}`
        : `unknown parameter "${name.slice(0, 64)}": neither a search control (${[...CONTROL].join(', ')}) nor a DICOM keyword or tag`);
    }
    if (!attribute.match) throw new QueryError(`${attribute.keyword} is answered but not matched on`);
    if (depth(attribute.level) > depth(level)) throw new QueryError(`${attribute.keyword} is a ${attribute.level} attribute: search /${attribute.level === 'series' ? 'series' : 'instances'} to match on it`);
    seen.set(attribute, [...(seen.get(attribute) ?? []), value]);
  }
  for (const [attribute, values] of seen) {
    if (values.length > 1 && attribute.match !== 'uid') throw new QueryError(`${attribute.keyword} is given ${values.length} times`);
    query.filters.push({ attribute, matches: matcher(attribute, values.join(','), fuzzy === 'true'), value: values.join(',') });
  }
  return query;
}

function matchable(level: Level): string[] {
  return QIDO_ATTRIBUTES.filter((x) => x.match && depth(x.level) <= depth(level)).map((x) => x.keyword);
}

function addIncludes(query: QidoQuery, value: string, dictionary: Dictionary): void {
  for (const name of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (name === 'all') { query.include = 'all'; continue; }
    const attribute = qidoAttribute(name);
    if (attribute) { if (query.include !== 'all') query.include.add(attribute.tag); continue; }
    // A valid attribute the index does not hold is left out of the answers, as PS3.18 allows.
    if (!/^[0-9a-f]{8}$/i.test(name) && dictionary.tagOf(name) === undefined) throw new QueryError(`includefield: unknown attribute "${name.slice(0, 64)}"`);
  }
}

function matcher(attribute: QidoAttribute, value: string, fuzzy: boolean): Matcher {
  switch (attribute.match) {
    case 'uid': return uidListMatcher(value);
    case 'person-name': return textMatcher(value, { caseInsensitive: true, personName: true });
    case 'date': return dateMatcher(value);
    case 'time': return timeMatcher(value);
    case 'integer': {
      if (!/^[+-]?\d+$/.test(value.trim())) throw new QueryError(`${attribute.keyword} must be an integer, not "${value.slice(0, 40)}"`);
      const n = Number(value);
      return (v) => Number(v) === n;
    }
    case 'modalities': {
      const wanted = new Set(value.split(/[,\\]/).map((s) => s.trim()).filter(Boolean));
      return (v) => wanted.size === 0 || v.split('\\').some((m) => wanted.has(m));
    }
    default: return textMatcher(value, { caseInsensitive: fuzzy });
  }
}

const passes = (filters: Filter[], level: Level, row: Row, urls: RetrieveUrls) =>
  filters.every((f) => f.attribute.level !== level || f.matches(String(f.attribute.value(row, urls))));

export interface SearchResult { rows: Row[]; more: boolean }

/**
 * The rows of a search, in the catalogue's order (newest study first, series by number, instances
 * along the slice normal). `visible` filters studies by the caller's access before anything below
 * them is opened; a scoped study or series that does not exist or is not visible: undefined (404).
 */
export async function search(catalogue: Catalogue, query: QidoQuery, visible: (studies: StudyEntry[]) => Promise<StudyEntry[]>, urls: RetrieveUrls): Promise<SearchResult | undefined> {
  const { scope, filters, level } = query;
  let studies: StudyEntry[];
  if (scope.studyInstanceUid !== undefined) {
    const one = catalogue.studyEntry(scope.studyInstanceUid);
    studies = one ? await visible([one]) : [];
    if (studies.length === 0) return undefined;
  } else {
    // A StudyInstanceUID list names its studies: looked up, not searched for.
    const uidFilter = filters.find((f) => f.attribute.tag === 0x0020000d);
    const uids = uidFilter ? uidFilter.value.split(/[,\\]/).map((u) => u.trim()).filter(Boolean) : [];
    const candidates = uids.length ? uids.map((u) => catalogue.studyEntry(u)).filter((e): e is StudyEntry => e !== undefined) : catalogue.studyEntries();
    studies = await visible(candidates.filter((s) => passes(filters, 'study', { study: s }, urls)));
  }
  const wanted = query.offset + query.limit;
  const rows: Row[] = [];
  const full = () => rows.length > wanted;
  if (level === 'study') {
    rows.push(...studies.slice(0, wanted + 1).map((study) => ({ study })));
  } else {
    for (const study of studies) {
      let seriesOf: SeriesEntry[] = study.series;
      if (scope.seriesInstanceUid !== undefined) {
        seriesOf = seriesOf.filter((s) => s.facts.seriesInstanceUid === scope.seriesInstanceUid);
        if (seriesOf.length === 0) return undefined;
      }
      for (const series of seriesOf) {
        if (full()) break;
        if (!passes(filters, 'series', { study, series }, urls)) continue;
        if (level === 'series') { rows.push({ study, series }); continue; }
        const opened = await catalogue.openSeries(series.facts.seriesInstanceUid);
        for (const instance of opened?.manifest.instances ?? []) {
          const row = { study, series, instance };
          if (passes(filters, 'instance', row, urls)) rows.push(row);
          if (full()) break;
        }
      }
      if (full()) break;
    }
  }
  return { rows: rows.slice(query.offset, wanted), more: rows.length > wanted };
}

/** The attributes a row answers with: the level's, the levels above when not fixed by the path, and what includefield adds. */
function answered(query: QidoQuery): QidoAttribute[] {
  const { level, scope, include } = query;
  const d = depth(level);
  return QIDO_ATTRIBUTES.filter((x) => {
    const xd = depth(x.level);
    if (xd > d) return false;
    if (x.tag === 0x00080005 || x.tag === 0x0020000d || x.tag === 0x0020000e) return true;
    if (include === 'all' || include.has(x.tag)) return true;
    if (xd === d) return !x.optional;
    // Attributes of the levels above: answered when the search spans them (PS3.18 §10.6.3.3.1).
    return x.level === 'study' ? scope.studyInstanceUid === undefined && d > 0 && !x.optional
      : scope.seriesInstanceUid === undefined && !x.optional;
  });
}

/**
 * Each row's JSON text, by the object it answers for and what is asked (attributes and root):
 * index facts do not change within a catalogue, so a study listed again is not written again.
 */
const rendered = new WeakMap<object, Map<string, string>>();

/** The rows as a DICOM JSON array (text). */
export function renderRows(query: QidoQuery, rows: Row[], urls: RetrieveUrls): string {
  const attributes = answered(query);
  const key = `${query.level}\0${attributes.map((x) => x.tag).join(',')}\0${urls.study('')}`;
  const texts = rows.map((row) => {
    const owner = row.instance ?? row.series ?? row.study;
    let byKey = rendered.get(owner);
    if (!byKey) rendered.set(owner, (byKey = new Map()));
    let text = byKey.get(key);
    if (text === undefined) {
      const ds: DicomJsonDataSet = {};
      for (const x of attributes) {
        const value = x.value(row, urls);
        ds[tagKey(x.tag)] = typeof value === 'number' ? numberElement(x.vr, [value]) : textElement(x.vr, value);
      }
      ds[tagKey(RETRIEVE_URL)] = { vr: 'UR', Value: [retrieveUrl(query.level, row, urls)] };
      text = JSON.stringify(sortedDataSet(ds));
      if (byKey.size < 8) byKey.set(key, text);
    }
    return text;
  });
  return `[${texts.join(',')}]`;
}
