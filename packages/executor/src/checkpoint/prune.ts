// Keeps a job's newest K checkpoints: older complete step directories whose manifest names the job
// are removed (a directory another job wrote, or one without a manifest, is never touched).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CheckpointManifest, MANIFEST } from './format';

function ownerOf(dir: string): string | null {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8')) as Partial<CheckpointManifest>).jobId ?? null;
  } catch {
    return null;
  }
}

/** Removes the job's complete checkpoints beyond the newest `keep`; returns the directories removed. */
export function pruneCheckpoints(root: string, jobId: string, keep: number): string[] {
  if (!(keep > 0) || !fs.existsSync(root)) return [];
  const mine = fs.readdirSync(root).filter((d) => /^step-\d+$/.test(d)).sort().reverse()
    .map((d) => path.join(root, d)).filter((dir) => ownerOf(dir) === jobId);
  const removed = mine.slice(keep);
  for (const dir of removed) {
    // The manifest goes first: a directory half removed is then incomplete, never loaded.
    fs.rmSync(path.join(dir, MANIFEST), { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return removed;
}
