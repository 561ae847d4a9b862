// Shared vitest configuration: every workspace runs `vitest run --config ../../vitest.config.ts`.
// Tests import sibling packages from their TypeScript sources (no build needed for unit tests) and
// every run writes a JSON report to <project>/.test-results/vitest.json so .ci/run can print the total counts.
import { defineConfig } from 'vitest/config';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';

const repoRoot = __dirname;
const cwd = process.cwd();

const alias: Record<string, string> = {};
for (const dir of ['packages', 'apps']) {
  for (const entry of fs.readdirSync(path.join(repoRoot, dir))) {
    const pj = path.join(repoRoot, dir, entry, 'package.json');
    if (!fs.existsSync(pj)) continue;
    const name = JSON.parse(fs.readFileSync(pj, 'utf8')).name as string;
    alias[name] = path.join(repoRoot, dir, entry, 'src/index.ts');
  }
}

export default defineConfig({
  resolve: { alias },
  test: {
    root: cwd,
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    // Tests never read or write the user's tuning cache (~/.cache/mist/tune) or kept GPU profiles (~/.config/mist/profiles).
    env: { MIST_CACHE_DIR: path.join(os.tmpdir(), 'mist-test-cache'), MIST_PROFILE_DIR: path.join(os.tmpdir(), 'mist-test-profiles-none') },
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    // Inside the project, so that nx can cache it as the test target's output and restore it on a replay.
    outputFile: { json: path.join(cwd, '.test-results', 'vitest.json') },
  },
});
