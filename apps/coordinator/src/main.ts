// The coordinator's process entry: `node dist/main.js --listen 0.0.0.0:7070 --state DIR`.
import { parseArgs } from 'node:util';
import { COORDINATOR_CLI_OPTIONS, runCoordinator } from './run-coordinator';

const options = Object.fromEntries(Object.entries(COORDINATOR_CLI_OPTIONS).map(([k, v]) => [k, { type: v.type }]));
Promise.resolve()
  .then(() => parseArgs({ args: process.argv.slice(2), options, strict: true }).values)
  .then((values) => runCoordinator({
    values,
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  }))
  .then(() => process.exit(0), (err: unknown) => {
    process.stderr.write(`coordinator: ${(err as Error).message}\n`);
    // A bad option or an unusable --state is the caller's to fix: exit 2, as the mist CLI does.
    const name = (err as Error).name;
    const code = (err as { code?: string }).code ?? '';
    process.exit(name === 'SpecError' || name === 'StateDirError' || code.startsWith('ERR_PARSE_ARGS') ? 2 : 1);
  });
