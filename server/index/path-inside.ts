// Whether a path lies within a folder: the one test that keeps reads inside the served folder.
import { sep } from 'node:path';

/** Whether `path` is `root` or inside it (both absolute and normalised). */
export function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}
