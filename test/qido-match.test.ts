// QIDO-RS matching (PS3.18 §8.3.4, PS3.4 C.2.2.2): wildcards, person-name groups, UID lists,
// date and time ranges, and the values refused with a message (a 400, never a crash).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueryError, dateMatcher, normaliseTime, textMatcher, timeMatcher, uidListMatcher } from '../server/dicomweb/qido-match.js';

describe('QIDO matching', () => {
  it('text: exact, * and ? wildcards, empty and * match all; regex characters are literal', () => {
    assert.equal(textMatcher('CT')('CT'), true);
    assert.equal(textMatcher('CT')('CTX'), false);
    assert.equal(textMatcher('Doe*')('Doe^John'), true);
    assert.equal(textMatcher('D?e^J*')('Doe^Jane'), true);
    assert.equal(textMatcher('D?e')('Doe^Jane'), false);
    assert.equal(textMatcher('')('anything'), true);
    assert.equal(textMatcher('*')(''), true);
    assert.equal(textMatcher('a.c')('abc'), false, '. is not a wildcard');
    assert.equal(textMatcher('(x)+*')('(x)+y'), true);
  });

  it('person names: case-insensitive when asked, any component group', () => {
    const name = 'Wang^XiaoDong=王^小東=';
    assert.equal(textMatcher('wang*', { caseInsensitive: true, personName: true })(name), true);
    assert.equal(textMatcher('wang*', { personName: true })(name), false, 'case-sensitive by default');
    assert.equal(textMatcher('王*', { personName: true })(name), true, 'the ideographic group');
    assert.equal(textMatcher('小東', { personName: true })(name), false, 'a group matches whole, not a part');
  });

  it('UIDs: one or a comma / backslash list; a value that is not a UID is refused', () => {
    const m = uidListMatcher('1.2.3,1.2.4\\1.2.5');
    assert.deepEqual(['1.2.3', '1.2.4', '1.2.5', '1.2.6'].map(m), [true, true, true, false]);
    assert.equal(uidListMatcher('')('1.2'), true);
    assert.throws(() => uidListMatcher('1.2.x'), (e: unknown) => e instanceof QueryError && /not a UID/.test(e.message));
  });

  it('dates: single, closed and open ranges; malformed ones refused', () => {
    const days = ['20231231', '20240101', '20240115', '20240131', '20240201', ''];
    assert.deepEqual(days.map(dateMatcher('20240115')), [false, false, true, false, false, false]);
    assert.deepEqual(days.map(dateMatcher('20240101-20240131')), [false, true, true, true, false, false]);
    assert.deepEqual(days.map(dateMatcher('-20240101')), [true, true, false, false, false, false]);
    assert.deepEqual(days.map(dateMatcher('20240131-')), [false, false, false, true, true, false]);
    for (const bad of ['2024-01-01', '202401', '-', '20240101-20240131-20240201', 'yesterday']) {
      assert.throws(() => dateMatcher(bad), QueryError, bad);
    }
  });

  it('times: HH, HHMM, HHMMSS.F… compared on the clock; ranges open or closed', () => {
    assert.equal(normaliseTime('0930'), '093000.000000');
    assert.equal(normaliseTime('09:30:15.5'), '093015.500000');
    assert.equal(normaliseTime('9'), undefined);
    const m = timeMatcher('0930-1200');
    assert.deepEqual(['092959', '0930', '113000.25', '12', '120000.000001'].map(m), [false, true, true, true, false]);
    assert.equal(timeMatcher('13-')('235959'), true);
    assert.throws(() => timeMatcher('noon'), QueryError);
  });
});
