// The `mist` command line: dispatches to one sub-command, turns errors into messages and exit codes
// (2 for a bad command line or an invalid spec, 1 for a failure while running).
import { nearestName, SpecError } from '@mist/core';
import { type CliIo, type Command, UsageError } from './cli/command';
import { commandHelp, mainHelp } from './cli/help';
import { parseCommandLine } from './cli/parse';
import * as registered from './commands';

export function allCommands(): Command[] {
  return Object.values(registered as Record<string, Command>)
    .filter((c) => typeof c === 'object' && c !== null && typeof c.run === 'function')
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function processIo(): CliIo {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    isTTY: Boolean(process.stderr.isTTY),
  };
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const commands = allCommands();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(mainHelp(commands));
    return name ? 0 : 2;
  }
  if (name === '--version') {
    io.stdout('mist 0.1.0\n');
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    const near = nearestName(name, commands.map((c) => c.name));
    io.stderr(`mist: unknown command "${name}"; ${near ? `did you mean "${near}"? ` : ''}commands: ${commands.map((c) => c.name).join(', ')}\n`);
    return 2;
  }
  try {
    const parsed = parseCommandLine(cmd, rest);
    if (parsed.values.help) {
      io.stdout(commandHelp(cmd));
      return 0;
    }
    const pos = cmd.positionals ?? { min: 0, max: 0, names: '' };
    if (parsed.positionals.length < pos.min || parsed.positionals.length > pos.max) {
      throw new UsageError(pos.max === 0 ? `takes no positional arguments (got ${parsed.positionals.join(' ')})` : `expects ${pos.names}`);
    }
    return await cmd.run(parsed.values, parsed.positionals, io);
  } catch (err) {
    if (err instanceof SpecError) {
      io.stderr(`mist ${name}: ${err.message}\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    if (err instanceof UsageError || (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS'))) {
      io.stderr(`mist ${name}: ${e.message}\nUsage: ${cmd.usage}\nRun \`mist ${name} --help\` for details.\n`);
      return 2;
    }
    io.stderr(`mist ${name}: ${e.message ?? String(err)}\n`);
    return 1;
  }
}
