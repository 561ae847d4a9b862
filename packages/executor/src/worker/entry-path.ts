import * as path from 'node:path';

/**
 * The built worker entry (dist/worker/entry.js) that a parent forks; the same path whether this
 * module runs from dist or from src (tests), so the package must be built (`tsc -b`) first.
 */
export function workerEntryPath(): string {
  return path.resolve(__dirname, '..', '..', 'dist', 'worker', 'entry.js');
}
