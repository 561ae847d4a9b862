// --help text: usage, options with descriptions, and working examples.
import type { Command } from './command';

export function commandHelp(cmd: Command): string {
  const lines = [`${cmd.summary}`, '', `Usage: ${cmd.usage}`, '', 'Options:'];
  const entries = Object.entries(cmd.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.valueName ?? 'VALUE'}` : ''}`;
    const def = o.default !== undefined ? ` (default: ${String(o.default)})` : '';
    return [flag, o.description + def] as const;
  });
  entries.push(['-h, --help', 'show this help']);
  const width = Math.max(...entries.map(([f]) => f.length));
  for (const [flag, desc] of entries) lines.push(`  ${flag.padEnd(width)}  ${desc}`);
  lines.push('', 'Examples:', ...cmd.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}

export function mainHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'mist — plan and run distributed LLM training (Mist: memory-parallelism co-optimisation)',
    '',
    'Usage: mist <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `mist <command> --help` for the options of a command.',
    '',
    'Examples:',
    ...commands.slice(0, 3).map((c) => `  ${c.examples[0]}`),
    '',
  ].join('\n');
}
