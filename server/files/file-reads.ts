// Reads of a served file other than its frames, through the same pooled handles (confined to the
// served folder, checked against the indexed size and mtime): its head (the data set before Pixel
// Data, for DICOMweb metadata and bulk data) and the whole file, in chunks (WADO-RS instances).
import { CodedError } from '../../shared/coded-error.js';
import { handleSource, readHead as readHeadOf, type IndexedFile } from '../index/index-file.js';
import type { ParsedHead } from '../index/read-dataset.js';
import type { HandlePool, OpenedStamp } from './handle-pool.js';

/** The first read of a head: most data sets before Pixel Data are a few KiB. */
const FIRST_HEAD_READ = 16 * 1024;
/** Chunks a whole file is sent in. */
const FILE_CHUNK = 256 * 1024;

function checkStamp(file: IndexedFile, opened: OpenedStamp): void {
  if (opened.size !== file.size || opened.mtimeMs !== file.mtimeMs) throw new CodedError('FILE_CHANGED', 'the file changed since it was indexed');
}

/** The file's data set up to Pixel Data, read as the index reads it (starting with a smaller piece). */
export function readHead(pool: HandlePool, file: IndexedFile): Promise<ParsedHead> {
  return pool.with(file.path, async (handle, opened) => {
    checkStamp(file, opened);
    return readHeadOf(handleSource(handle, file.size), FIRST_HEAD_READ);
  });
}

/** Hands the whole file to `write` in chunks, waiting for each write (the caller's backpressure). */
export function pipeFile(pool: HandlePool, file: IndexedFile, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
  return pool.with(file.path, async (handle, opened) => {
    checkStamp(file, opened);
    for (let at = 0; at < file.size; at += FILE_CHUNK) {
      const length = Math.min(FILE_CHUNK, file.size - at);
      const chunk = Buffer.allocUnsafe(length);
      const { bytesRead } = await handle.read(chunk, 0, length, at);
      if (bytesRead < length) throw new CodedError('FILE_CHANGED', 'the file is shorter than its index');
      await write(chunk);
    }
  });
}
