// Tells when files under the served folder may have changed: a recursive fs.watch, debounced,
// with a periodic rescan as a fallback where watching is unreliable (network file systems, too
// many folders for inotify). The caller refreshes the index on each call.
import { watch, type FSWatcher } from 'node:fs';

export interface FolderWatcher { close(): void }

export interface WatchOptions {
  /** Wait this long after the last event before calling (a copy of many files is one refresh). */
  debounceMs?: number;
  /**
   * But never longer than this after the first event of a burst: files that keep arriving (a
   * DICOM receiver storing a study for a minute) are picked up as they come, not when it ends.
   */
  maxWaitMs?: number;
  /** Rescan at this interval whatever the watcher says; 0: never. */
  rescanMs?: number;
  /** Events under these path prefixes are ignored (the index folder). */
  ignore?: string[];
  onError?: (e: Error) => void;
}

export function watchFolder(root: string, onChange: () => void, options: WatchOptions = {}): FolderWatcher {
  const debounceMs = options.debounceMs ?? 200;
  const maxWaitMs = options.maxWaitMs ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  /** When the pending call must happen at the latest (set by the burst's first event). */
  let deadline = 0;
  const soon = () => {
    const now = performance.now();
    if (timer) clearTimeout(timer);
    else deadline = now + maxWaitMs;
    timer = setTimeout(() => { timer = undefined; onChange(); }, Math.max(0, Math.min(debounceMs, deadline - now)));
    timer.unref();
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(root, { recursive: true, persistent: false }, (_event, name) => {
      const path = name ? String(name) : '';
      if (path.split(/[\\/]/).some((part) => part.startsWith('.'))) return; // the index folder, dot-files
      if (options.ignore?.some((prefix) => path.startsWith(prefix))) return;
      soon();
    });
    watcher.on('error', (e) => {
      options.onError?.(e);
      watcher?.close();
      watcher = undefined;
    });
  } catch (e) {
    options.onError?.(e as Error);
  }
  const rescanMs = options.rescanMs ?? 60_000;
  const rescan = rescanMs > 0 ? setInterval(onChange, rescanMs) : undefined;
  rescan?.unref();
  return {
    close() {
      watcher?.close();
      if (timer) clearTimeout(timer);
      if (rescan) clearInterval(rescan);
    },
  };
}
