// Using dicomstream leaves no trace in modules other code shares: dicom-parser's DataSet is not
// patched (the indexer's workaround lives only while its own parse runs).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import dicomParser from 'dicom-parser';
import { indexBytes } from '../server/index.js';
import { filesDir } from './helpers/corpus.js';

const prototype = (dicomParser as unknown as { DataSet: { prototype: object } }).DataSet.prototype;

describe('module state', () => {
  it('indexing every corpus file (whole and cut short) leaves dicom-parser\'s DataSet as it was', async () => {
    let indexed = 0;
    for (const name of readdirSync(filesDir)) {
      const bytes = readFileSync(join(filesDir, name));
      for (const cut of [bytes, bytes.subarray(0, Math.floor(bytes.length / 3))]) {
        await indexBytes(cut, name).then(() => indexed++, () => undefined);
        assert.equal(Object.getOwnPropertyDescriptor(prototype, 'warnings'), undefined, `after ${name}`);
      }
    }
    assert.ok(indexed > 30, `${indexed} files indexed`);
    // dicom-parser's own behaviour for other users: a data set it makes has its own warnings array.
    const own = dicomParser.parseDicom(readFileSync(join(filesDir, 'CT_small.dcm')));
    assert.ok(Array.isArray((own as unknown as { warnings: unknown }).warnings));
  });
});
