// Runs inside a private network namespace with only loopback (test/orthanc.test.ts starts it with
// `unshare -n`): Orthanc has no bind-address option and listens on every interface. Starts
// dicomstream and Orthanc + its DICOMweb plugin (a temporary storage folder, no DICOM listener, no
// authentication) on the same files, sends both the same QIDO-RS and WADO-RS requests, and prints
// their answers as one JSON line for the test to compare. Arguments: the files.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createLogger, startServer } from '../../server/index.js';
import { freePort } from './ports.js';

const files = process.argv.slice(2);
const AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
type Json = Record<string, { vr: string; Value?: unknown[] }>;

function packageFile(pkg: string, pattern: RegExp): string {
  const listed = spawnSync('dpkg', ['-L', pkg], { encoding: 'utf8' });
  const found = listed.stdout.split('\n').filter((f) => pattern.test(f) && existsSync(f));
  if (!found.length) throw new Error(`Debian package ${pkg} is not installed (apt-get install orthanc orthanc-dicomweb)`);
  return found.sort((a, b) => a.length - b.length)[0]!;
}

async function untilAnswers(url: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`Orthanc did not answer ${url}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The bytes of each part of a multipart/related answer. */
function parts(body: Buffer, contentType: string): Buffer[] {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!m) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`\r\n--${m[1] ?? m[2]}`);
  const text = Buffer.concat([Buffer.from('\r\n'), body]);
  const out: Buffer[] = [];
  let at = text.indexOf(delimiter);
  while (at >= 0) {
    const headEnd = text.indexOf('\r\n\r\n', at + delimiter.length);
    if (headEnd < 0) break;
    const next = text.indexOf(delimiter, headEnd);
    if (next < 0) break;
    out.push(text.subarray(headEnd + 4, next));
    at = next;
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dicomstream-orthanc-'));
  const root = join(dir, 'files');
  spawnSync('mkdir', ['-p', root]);
  for (const f of files) copyFileSync(f, join(root, basename(f)));
  const port = await freePort();
  writeFileSync(join(dir, 'orthanc.json'), JSON.stringify({
    Name: 'dicomstream-test', StorageDirectory: join(dir, 'storage'), IndexDirectory: join(dir, 'index'),
    DicomServerEnabled: false, HttpPort: port, RemoteAccessAllowed: false, AuthenticationEnabled: false,
    HttpCompressionEnabled: false, SaveJobs: false, DefaultEncoding: 'Utf8', Plugins: [packageFile('orthanc-dicomweb', /libOrthancDicomWeb\.so/)],
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false },
  }));
  const orthanc = spawn(packageFile('orthanc', /\/Orthanc$/), [join(dir, 'orthanc.json')], { stdio: 'ignore' });
  const ours = await startServer({ root, host: '127.0.0.1', port: 0, indexDir: join(dir, 'index-ds'), log: createLogger('silent') });
  try {
    const orthancRoot = `http://127.0.0.1:${port}/dicom-web`;
    await untilAnswers(`http://127.0.0.1:${port}/system`, Date.now() + 30_000);
    for (const f of files) {
      const res = await fetch(`http://127.0.0.1:${port}/instances`, { method: 'POST', body: readFileSync(f), headers: { 'content-type': 'application/dicom' } });
      if (!res.ok) throw new Error(`Orthanc refused ${f}: ${res.status}`);
    }
    const roots = { ours: `http://127.0.0.1:${ours.port}/dicomweb`, orthanc: orthancRoot };
    const both = async (path: string) => ({
      path,
      ours: await (await fetch(`${roots.ours}${path}`, { headers: { accept: 'application/dicom+json' } })).json() as Json[],
      orthanc: await (await fetch(`${roots.orthanc}${path}`, { headers: { accept: 'application/dicom+json' } })).json() as Json[],
    });
    const answers = [await both('/studies'), await both('/series'), await both('/instances'), await both('/studies?PatientName=*a*')];
    const frames: Array<{ path: string; ours: string[]; orthanc: string[] }> = [];
    for (const instance of answers[2]!.ours) {
      const [s, se, i] = ['0020000D', '0020000E', '00080018'].map((t) => instance[t]!.Value![0] as string);
      const path = `/studies/${s}/series/${se}/instances/${i}`;
      answers.push(await both(`${path}/metadata`));
      const n = Number(instance['00280008']?.Value?.[0] ?? 1);
      const list = Array.from({ length: Math.min(n, 4) }, (_, k) => k + 1).join(',');
      const hashes = async (url: string) => {
        const res = await fetch(url, { headers: { accept: AS_STORED } });
        if (!res.ok) return [`HTTP ${res.status}`];
        return parts(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '').map((b) => createHash('sha256').update(b).digest('hex'));
      };
      frames.push({ path, ours: await hashes(`${roots.ours}${path}/frames/${list}`), orthanc: await hashes(`${roots.orthanc}${path}/frames/${list}`) });
    }
    process.stdout.write(`${JSON.stringify({ answers, frames })}\n`);
  } finally {
    await ours.close();
    orthanc.kill('SIGTERM');
    await new Promise((r) => orthanc.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
