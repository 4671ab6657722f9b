// Indexing an archive's objects: its listing as the files to index, and a parser that reads each
// object with ranged GETs (in this thread: the reads are network waits, not CPU a worker would save).
import type { FileStamp } from '../../shared/index-format.js';
import { IndexError } from '../index/index-error.js';
import { indexByteSource } from '../index/index-file.js';
import type { FolderListing, Parser } from '../index/refresh.js';
import type { S3Archive } from './s3.js';

export interface ObjectIndexing {
  /** The objects to index (what refreshIndex's `list` option takes). */
  list(): Promise<FolderListing>;
  parser: Parser;
  /** Objects parsed so far. */
  readonly parsed: number;
}

export function objectIndexing(archive: S3Archive): ObjectIndexing {
  // Each object's size and date as last listed: the parser needs them, and gets only a path.
  const listed = new Map<string, FileStamp>();
  let parsed = 0;
  return {
    async list() {
      const stamps = await archive.list();
      listed.clear();
      for (const s of stamps) listed.set(s.path, s);
      return { stamps, refused: [] };
    },
    parser: {
      async parse(path: string) {
        const stamp = listed.get(path);
        if (!stamp) throw new IndexError('UNREADABLE', 'the object is no longer listed');
        parsed++;
        const file = await indexByteSource(path, archive.source(path, stamp.size, stamp.etag), stamp.mtimeMs);
        if (stamp.etag) file.etag = stamp.etag;
        return file;
      },
    },
    get parsed() { return parsed; },
  };
}
