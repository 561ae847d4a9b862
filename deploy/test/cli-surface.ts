// What the deploy files may name: the `mist` sub-commands and their flags (the CLI's own command
// table, so a renamed flag fails the checks) and the MIST_* environment variables the code reads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allCommands } from '@mist/app-cli';

export const REPO = path.resolve(__dirname, '../..');
export const DEPLOY = path.join(REPO, 'deploy');

/** Sub-command -> its long flags (without `--`), `help` included as every command takes it. */
export function cliFlags(): Map<string, Set<string>> {
  return new Map(allCommands().map((c) => [c.name, new Set([...Object.keys(c.options), 'help'])]));
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (!['node_modules', 'dist', 'build', 'generated'].includes(e.name)) sourceFiles(p, out);
    } else if (/\.(ts|js)$/.test(e.name) && !/\.test\.ts$/.test(e.name)) out.push(p);
  }
  return out;
}

/** MIST_* variables that the apps, packages and build scripts read (`env.MIST_X`, `env['MIST_X']`). */
export function envVarsRead(): Set<string> {
  const names = new Set<string>();
  for (const dir of ['apps', 'packages', 'tools/scripts']) {
    for (const file of sourceFiles(path.join(REPO, dir))) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\benv(?:\.(MIST_[A-Z0-9_]+)|\[['"](MIST_[A-Z0-9_]+)['"]\])/g)) names.add(m[1] ?? m[2]);
    }
  }
  return names;
}

/** Every MIST_* name a text mentions. */
export function envVarsNamed(text: string): string[] {
  return [...new Set([...text.matchAll(/(?<![A-Za-z0-9_])MIST_[A-Z0-9_]+/g)].map((m) => m[0]))];
}
