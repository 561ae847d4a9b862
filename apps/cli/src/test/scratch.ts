// A fresh folder for one test's files, under the OS temp folder (mist-NAME-XXXXXX); the OS cleans it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function scratchDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mist-${name}-`));
}
