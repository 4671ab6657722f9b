// Where the saved index's files live: a folder on disk, or a prefix of a bucket (shared by replicas
// on other machines). Both replace a file whole (a reader sees the old version or the new, never a
// mix), create one only when absent (the writer's lock), and tell a file's version cheaply (what a
// read-only replica polls).
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { S3Archive, archiveIndexDir, isS3Url, type S3ArchiveOptions } from '../archive/s3.js';

/** The index folder of a served folder when none is given. */
export const DEFAULT_INDEX_DIR = '.dicomstream';

export interface IndexFolder {
  /** The folder's path or `s3://` URL, for messages. */
  readonly location: string;
  /** A file's path or URL, for messages. */
  pathOf(name: string): string;
  /** A file's bytes; undefined when it does not exist. */
  read(name: string): Promise<Uint8Array | undefined>;
  /** Replaces a file whole. */
  write(name: string, bytes: Uint8Array): Promise<void>;
  remove(name: string): Promise<void>;
  /** A token that changes whenever the file is replaced; undefined when it does not exist. */
  version(name: string): Promise<string | undefined>;
  /** Creates a file that does not exist yet; false (and nothing written) when it does. */
  create(name: string, bytes: Uint8Array): Promise<boolean>;
  /** Throws when the folder cannot be written. */
  probe(): Promise<void>;
  /**
   * Removes the temporary files that writers which are gone (killed mid-write) left in these
   * subfolders (`''`: the folder itself) while writing a file whose name `written` matches;
   * returns how many. Only for the lock's holder: any such temp file but this process's is then
   * garbage. A folder whose writes leave none (a bucket) lacks it.
   */
  removeStaleTemps?(subfolders: readonly string[], written: RegExp): Promise<number>;
  /** For a process on its way out (no await then), where the folder allows it. */
  readSync?(name: string): Uint8Array | undefined;
  removeSync?(name: string): void;
  close(): void;
}

let tempCounter = 0;
/** A temp file of write(): `<name>.<pid>.<n>.tmp`. */
const TEMP_FILE = /^(.+)\.(\d+)\.\d+\.tmp$/;

/**
 * mkdir -p that reports the real reason: Node's recursive mkdir says ENOENT on a read-only file
 * system (EROFS) or a folder it may not write in (EACCES); the first folder that cannot be made
 * is made again alone to learn why.
 */
async function makeFolder(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    let missing = path;
    while (dirname(missing) !== missing && !(await stat(dirname(missing)).then(() => true, () => false))) missing = dirname(missing);
    await mkdir(missing); // throws the real error
    await mkdir(path, { recursive: true }); // made meanwhile: go on

  }
}

export class LocalIndexFolder implements IndexFolder {
  constructor(readonly location: string) {}

  pathOf(name: string): string { return join(this.location, name); }

  async read(name: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.pathOf(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** A temp file renamed over the old one: readers never see half a file. */
  async write(name: string, bytes: Uint8Array): Promise<void> {
    const path = this.pathOf(name);
    await makeFolder(dirname(path));
    const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
    try {
      await writeFile(temp, bytes);
      await rename(temp, path);
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
  }

  remove(name: string): Promise<void> { return rm(this.pathOf(name), { force: true }); }

  async removeStaleTemps(subfolders: readonly string[], written: RegExp): Promise<number> {
    let removed = 0;
    // Names only (no stat a file): a listing of each folder, cheap even with 100,000 series files.
    for (const sub of subfolders) {
      const dir = join(this.location, sub);
      const names = await readdir(dir).catch((): string[] => []);
      for (const name of names) {
        const m = TEMP_FILE.exec(name);
        if (!m || !written.test(m[1]!) || Number(m[2]) === process.pid) continue;
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  async version(name: string): Promise<string | undefined> {
    try {
      const s = await stat(this.pathOf(name));
      return `${s.mtimeMs}:${s.ino}:${s.size}`;
    } catch {
      return undefined;
    }
  }

  async create(name: string, bytes: Uint8Array): Promise<boolean> {
    await makeFolder(this.location);
    // Written whole under a temp name, then linked to its own (link fails when the name exists):
    // a reader never sees it empty or half-written.
    const path = this.pathOf(name);
    const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
    try {
      writeFileSync(temp, bytes, { flag: 'wx' });
      try {
        linkSync(temp, path);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
        writeFileSync(path, bytes, { flag: 'wx' }); // a file system without hard links (SMB, FAT)
      }
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      rmSync(temp, { force: true });
    }
  }

  async probe(): Promise<void> {
    await makeFolder(this.location);
    const probe = this.pathOf(`.probe-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  }

  readSync(name: string): Uint8Array | undefined {
    try {
      return readFileSync(this.pathOf(name));
    } catch {
      return undefined;
    }
  }

  removeSync(name: string): void { rmSync(this.pathOf(name), { force: true }); }

  close(): void {}
}

/** Index files as objects under a prefix: a PUT replaces an object whole, and If-None-Match creates one only when absent. */
export class BucketIndexFolder implements IndexFolder {
  readonly location: string;

  constructor(private readonly store: S3Archive) {
    this.location = store.root;
  }

  pathOf(name: string): string { return `${this.location}/${name}`; }
  read(name: string): Promise<Uint8Array | undefined> { return this.store.getObject(this.pathOf(name)); }
  async write(name: string, bytes: Uint8Array): Promise<void> { await this.store.putObject(this.pathOf(name), bytes); }
  remove(name: string): Promise<void> { return this.store.deleteObject(this.pathOf(name)); }
  version(name: string): Promise<string | undefined> { return this.store.headObject(this.pathOf(name)); }
  create(name: string, bytes: Uint8Array): Promise<boolean> { return this.store.putObject(this.pathOf(name), bytes, { onlyIfAbsent: true }); }

  async probe(): Promise<void> {
    const probe = this.pathOf(`.probe-${process.pid}`);
    await this.store.putObject(probe, new Uint8Array(0));
    await this.store.deleteObject(probe);
  }

  close(): void { this.store.close(); }
}

/**
 * The index folder for an archive: `indexDir` as given (an `s3://` URL is a bucket's prefix, a
 * relative path is relative to where the command runs, as any path on a command line), else the
 * served folder's `.dicomstream`, or for a store the user's cache; undefined for `false` (memory only).
 */
export function openIndexFolder(root: string, indexDir: string | false | undefined, archive: S3Archive | undefined, s3: S3ArchiveOptions): IndexFolder | undefined {
  if (indexDir === false) return undefined;
  if (indexDir && isS3Url(indexDir)) return new BucketIndexFolder(new S3Archive(indexDir, s3));
  if (indexDir) return new LocalIndexFolder(resolve(indexDir));
  return new LocalIndexFolder(archive ? archiveIndexDir(archive) : join(root, DEFAULT_INDEX_DIR));
}
