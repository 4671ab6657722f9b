// The matching rules QIDO-RS search parameters follow (PS3.18 §8.3.4, PS3.4 C.2.2.2): a value
// with `*` or `?` is a wildcard match, a date or time with `-` a range (open at either end), UIDs a
// list; an empty value matches everything. Pure functions over the index's strings: the search
// routes build one matcher per parameter and test each study, series or instance with it.

/** A search parameter whose value cannot be matched: answered 400 with this message. */
export class QueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueryError';
  }
}

export type Matcher = (value: string) => boolean;

const everything: Matcher = () => true;

/**
 * Single-value or wildcard matching of a text attribute. Person names match when any of their
 * component groups (alphabetic, ideographic, phonetic) does; `caseInsensitive` as QIDO servers
 * match names (and as `fuzzymatching` asks).
 */
export function textMatcher(query: string, options: { caseInsensitive?: boolean; personName?: boolean } = {}): Matcher {
  if (query === '' || query === '*') return everything;
  // Case-insensitive matching folds with toLowerCase (no locale: the same answer on every server)
  // and a wildcard pattern is one regular expression with the `i` flag: no string made per value tested.
  const fold = options.caseInsensitive ? (s: string) => s.toLowerCase() : (s: string) => s;
  const pattern = fold(query);
  const wildcard = /[*?]/.test(pattern);
  const regex = wildcard
    ? new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, options.caseInsensitive ? 'siu' : 'su')
    : undefined;
  const one = (v: string) => (regex ? regex.test(v) : fold(v) === pattern);
  if (!options.personName) return one;
  return (value) => one(value) || (value.includes('=') && value.split('=').some((group) => group !== '' && one(group)));
}

/** A list of UIDs (comma or backslash separated): matches any of them. */
export function uidListMatcher(query: string): Matcher {
  const uids = query.split(/[,\\]/).map((u) => u.trim()).filter(Boolean);
  for (const uid of uids) if (!/^[0-9]+(\.[0-9]+)*$/.test(uid) || uid.length > 64) throw new QueryError(`"${uid.slice(0, 80)}" is not a UID`);
  if (uids.length === 0) return everything;
  const set = new Set(uids);
  return (value) => set.has(value);
}

const DATE = /^\d{8}$/;
/** A DA value or range: `20240101`, `20240101-20240131`, `-20240131`, `20240101-`. */
export function dateMatcher(query: string): Matcher {
  return rangeMatcher(query, 'date', (v) => (DATE.test(v) ? v : undefined));
}

/** A TM value or range (`0930-1200`, `093000.5-`): compared as HHMMSS.FFFFFF, missing parts as 0. */
export function timeMatcher(query: string): Matcher {
  return rangeMatcher(query, 'time', normaliseTime);
}

/** HHMMSS.FFFFFF of a TM value (HH, HHMM, HHMMSS, with a fraction, also HH:MM:SS), or undefined. */
export function normaliseTime(v: string): string | undefined {
  const m = /^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$/.exec(v.trim());
  if (!m) return undefined;
  return `${m[1]}${m[2] ?? '00'}${m[3] ?? '00'}.${(m[4] ?? '').padEnd(6, '0')}`;
}

function rangeMatcher(query: string, what: 'date' | 'time', normalise: (v: string) => string | undefined): Matcher {
  if (query === '') return everything;
  const bad = () => new QueryError(`"${query.slice(0, 80)}" is not a ${what} or a ${what} range`);
  const parts = query.split('-');
  if (parts.length > 2) throw bad();
  const [fromText, toText] = parts.length === 2 ? parts : [query, query];
  const from = fromText ? normalise(fromText) : '';
  const to = toText ? normalise(toText) : '\uffff';
  if (from === undefined || to === undefined || (fromText === '' && toText === '')) throw bad();
  return (value) => {
    const v = normalise(value);
    return v !== undefined && v >= from && v <= to;
  };
}
