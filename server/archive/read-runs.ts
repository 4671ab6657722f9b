// Ranged reads of one object that lie close together, merged into one GET: a request is a round
// trip and, with the AWS SDK, a few milliseconds of CPU, while a few KiB more of body cost
// microseconds. The frames of a multi-frame object, and the fragments of one frame, lie end to end
// (or a fragment's 8-byte item header apart).

/** A read of bytes offset..offset+length of one version of an object. */
export interface RangeRead {
  key: string;
  /** The version asked for (If-Match); reads of different versions never merge. */
  etag?: string;
  offset: number;
  length: number;
}

/** Bytes between two reads that one GET still spans (read and dropped) rather than make two. */
export const MERGE_GAP = 64 * 1024;
/** One GET spans at most this much: longer runs are split (a body is held until its reads are done). */
export const MAX_RUN = 32 * 1024 * 1024;

/** A GET of bytes start..end of an object, and the reads it answers. */
export interface ReadRun<R extends RangeRead> {
  key: string;
  etag?: string;
  start: number;
  end: number;
  reads: R[];
}

/** Groups `reads` into runs: one per object version and stretch of reads at most MERGE_GAP apart. */
export function readRuns<R extends RangeRead>(reads: readonly R[], maxRun = MAX_RUN): Array<ReadRun<R>> {
  const sorted = [...reads].sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : (a.etag ?? '') < (b.etag ?? '') ? -1 : (a.etag ?? '') > (b.etag ?? '') ? 1 : a.offset - b.offset);
  const runs: Array<ReadRun<R>> = [];
  let run: ReadRun<R> | undefined;
  for (const r of sorted) {
    const end = r.offset + r.length;
    if (run && run.key === r.key && run.etag === r.etag && r.offset <= run.end + MERGE_GAP && Math.max(run.end, end) - run.start <= maxRun) {
      run.end = Math.max(run.end, end);
      run.reads.push(r);
      continue;
    }
    run = { key: r.key, ...(r.etag !== undefined ? { etag: r.etag } : {}), start: r.offset, end, reads: [r] };
    runs.push(run);
  }
  return runs;
}
