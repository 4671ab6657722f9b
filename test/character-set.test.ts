// Text attributes decoded by their Specific Character Set, in the index and so in every answer
// built from it: files written by pydicom (which encodes by character set) in each set DICOM
// names, and the corpus's UTF-8 file, decoded as pydicom decodes them. Person names are compared
// group by group (alphabetic, ideographic, phonetic).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { indexFile } from '../server/index.js';
import { filesDir } from './helpers/corpus.js';

const PYTHON = '/usr/bin/python3';
const script = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'charset-files.py');

interface Case { charset: string | string[]; name: string; description: string }
/** Names after the examples of PS3.5 Annexes H–K, and words in each script. */
const CASES: Case[] = [
  { charset: 'ISO_IR 192', name: 'Wang^XiaoDong=王^小東=', description: 'Thorax — Ürün' },
  { charset: 'ISO_IR 100', name: 'Buc^Jérôme', description: 'Tête' },
  { charset: 'ISO_IR 101', name: 'Wałęsa^Lech', description: 'Hrudník' },
  { charset: 'ISO_IR 109', name: 'Ġużeppi^Ħasan', description: 'Sider' },
  { charset: 'ISO_IR 110', name: 'Ķēniņš^Jānis', description: 'Krūtis' },
  { charset: 'ISO_IR 144', name: 'Люкceмбypг^Иван', description: 'Грудь' },
  { charset: 'ISO_IR 127', name: 'قباني^لنزار', description: 'صدر' },
  { charset: 'ISO_IR 126', name: 'Διονυσιος', description: 'Θώρακας' },
  { charset: 'ISO_IR 138', name: 'שרון^דבורה', description: 'חזה' },
  { charset: 'ISO_IR 148', name: 'Çavuşoğlu^Ayşe', description: 'Göğüs' },
  { charset: 'ISO_IR 166', name: 'ประเทศไทย', description: 'หน้าอก' },
  { charset: ['', 'ISO 2022 IR 87'], name: 'Yamada^Tarou=山田^太郎=やまだ^たろう', description: '胸部' },
  { charset: ['ISO 2022 IR 13', 'ISO 2022 IR 87'], name: 'ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう', description: 'ｷｮｳﾌﾞ' },
  { charset: ['', 'ISO 2022 IR 87', 'ISO 2022 IR 159'], name: 'Yamada^Tarou=山田^太郎=', description: '胸部' },
  { charset: ['', 'ISO 2022 IR 149'], name: 'Hong^Gildong=洪^吉洞=홍^길동', description: '흉부' },
  { charset: ['', 'ISO 2022 IR 58'], name: 'Zhang^XiaoDong=张^小东=', description: '胸部' },
  { charset: 'GB18030', name: 'Wang^XiaoDong=王^小东=', description: '胸部' },
  { charset: 'GBK', name: 'Wang^XiaoDong=王^小东=', description: '胸部' },
];
/** pydicom 2.3 decodes GB2312 (ISO 2022 IR 58) with its escape sequence left in: the intended text is the reference. */
const PYDICOM_WRONG = new Set(['ISO 2022 IR 58']);

const groups = (pn: string): string[] => {
  const g = pn.split('=');
  while (g.length > 1 && g[g.length - 1] === '') g.pop();
  return g;
};

describe('text attributes by Specific Character Set', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-charset-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const corpusFile = join(filesDir, 'chrX1.dcm');
  const run = spawnSync(PYTHON, [script, dir, JSON.stringify(CASES), corpusFile], { encoding: 'utf8' });
  const decoded: Array<{ path: string; name: string[]; description: string; series: string }> = run.status === 0 ? JSON.parse(run.stdout) : [];

  it('pydicom wrote and read every case', () => {
    assert.equal(run.status, 0, `pydicom is needed (apt-get install python3-pydicom): ${run.stderr}`);
    assert.equal(decoded.length, CASES.length + 1);
  });

  CASES.forEach((c, i) => {
    const label = Array.isArray(c.charset) ? c.charset.join('\\') : c.charset;
    it(`${label}: the patient name and descriptions as pydicom decodes them`, async () => {
      const ref = decoded[i];
      assert.ok(ref, 'pydicom read the file');
      const file = await indexFile(ref.path);
      const wrong = [c.charset].flat().some((s) => PYDICOM_WRONG.has(s));
      // The reference must be the text written (else pydicom's own round trip failed, and proves nothing).
      const expectedName = wrong ? groups(c.name) : groups(ref.name.join('='));
      if (!wrong) assert.deepEqual(expectedName, groups(c.name), 'pydicom read back what it wrote');
      assert.deepEqual(groups(file.study.patientName), expectedName, 'Patient Name');
      assert.equal(file.study.studyDescription, wrong ? c.description : ref.description, 'Study Description');
      assert.equal(file.series.seriesDescription, wrong ? c.description : ref.series, 'Series Description');
    });
  });

  it('the corpus\'s UTF-8 file chrX1.dcm: Wang^XiaoDong=王^小東=, as pydicom decodes it', async () => {
    const ref = decoded[CASES.length];
    assert.ok(ref, 'pydicom read chrX1.dcm');
    const file = await indexFile(corpusFile);
    assert.deepEqual(groups(file.study.patientName), groups(ref.name.join('=')));
    assert.equal(file.study.patientName, 'Wang^XiaoDong=王^小東=');
  });
});
