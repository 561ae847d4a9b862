// Where an agent lets its workers write checkpoints: a job's checkpointDir must be an absolute path
// inside the root the agent was started with (`mist agent --checkpoint-root DIR`), also after
// symbolic links are followed, so a token holder cannot make the agent's user write anywhere.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The real path of the deepest existing ancestor of `p`, joined with the part that does not exist yet. */
function realPathOfPrefix(p: string): string {
  let head = p;
  const rest: string[] = [];
  while (!fs.existsSync(head)) {
    const parent = path.dirname(head);
    if (parent === head) break;
    rest.unshift(path.basename(head));
    head = parent;
  }
  return path.join(fs.realpathSync(head), ...rest);
}

/** Throws naming run.checkpointDir unless `dir` is acceptable: absolute, no NUL byte, and inside `root` when one is set. */
export function checkCheckpointDir(dir: string, root: string | undefined): string {
  const field = `run.checkpointDir "${dir.replace(/\0/g, '\\0')}"`;
  if (dir.includes('\0')) throw new Error(`${field}: contains a NUL byte`);
  if (!path.isAbsolute(dir)) throw new Error(`${field}: must be an absolute path (relative paths would depend on each agent's working directory)`);
  if (root === undefined) return path.resolve(dir);
  const realRoot = fs.realpathSync(root);
  const real = realPathOfPrefix(path.resolve(dir));
  const rel = path.relative(realRoot, real);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new Error(`${field}: outside this agent's --checkpoint-root ${root} (resolves to ${real})`);
  }
  return real;
}
