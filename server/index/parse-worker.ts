// A parser thread of ParsePool: indexes the files it is sent, one reply per file.
import { parentPort } from 'node:worker_threads';
import { IndexError } from './index-error.js';
import { indexFile } from './index-file.js';
import type { ParseReply } from './parse-pool.js';

parentPort?.on('message', (job: { id: number; path: string }) => {
  indexFile(job.path, { blocking: true }).then(
    (file) => parentPort!.postMessage({ id: job.id, file } satisfies ParseReply),
    (e: unknown) => {
      const error = e instanceof IndexError ? e : new IndexError('CORRUPT', String((e as Error)?.message ?? e));
      parentPort!.postMessage({ id: job.id, error: { code: error.code, message: error.message } } satisfies ParseReply);
    },
  );
});
