// Parsing one command's arguments with node:util parseArgs, with messages for people: an unknown
// option is named with the nearest option of that command (Node's own text tells the user to put
// it after `--`, which is never what they meant), and a missing value names the option.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { nearestName } from '@mist/core';
import { type Command, type ParsedValues, UsageError } from './command';

export interface ParsedCommandLine {
  values: ParsedValues;
  positionals: string[];
}

/** Every option of `cmd` as `--name`, plus `--help`. */
export function optionFlags(cmd: Command): string[] {
  return [...Object.keys(cmd.options), 'help'].map((n) => `--${n}`);
}

// What Megatron-LM (--global-batch-size, --micro-batch-size, --seq-length) and DeepSpeed users
// (train_batch_size, gbs/mbs in their docs) type for our options.
const HABITS: Record<string, string[]> = {
  'global-batch': ['gbs', 'global-batch-size', 'batch-size', 'train-batch-size'],
  'micro-batch': ['mbs', 'micro-batch-size', 'train-micro-batch-size-per-gpu'],
  seq: ['seq-len', 'seq-length', 'sequence-length', 'seqlen', 'max-seq-len'],
};

/**
 * The option a mistyped `--flag` most likely meant: a habit from another tool, one option that
 * contains it, else the nearest by edit distance.
 */
export function suggestOption(flag: string, cmd: Command): string | undefined {
  const bare = flag.replace(/^-+/, '').split('=')[0].toLowerCase().replace(/_/g, '-');
  const flags = optionFlags(cmd);
  const habit = Object.entries(HABITS).find(([name, spellings]) => name in cmd.options && spellings.includes(bare));
  if (habit) return `--${habit[0]}`;
  const containing = bare.length >= 3 ? flags.filter((f) => f.slice(2).includes(bare)) : [];
  if (containing.length === 1) return containing[0];
  const near = nearestName(bare, flags.map((f) => f.slice(2)));
  return near === undefined ? undefined : `--${near}`;
}

function unknownOption(flag: string, cmd: Command): UsageError {
  const near = suggestOption(flag, cmd);
  const hint = near ? `did you mean ${near}?` : `options of mist ${cmd.name}: ${optionFlags(cmd).join(', ')}`;
  return new UsageError(`unknown option ${flag}; ${hint}`);
}

export function parseCommandLine(cmd: Command, args: string[]): ParsedCommandLine {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const [key, o] of Object.entries(cmd.options)) {
    const { description: _d, valueName: _v, ...spec } = o;
    options[key] = spec;
  }
  try {
    const parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: parsed.values as ParsedValues, positionals: parsed.positionals };
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /option '([^']+)'/i.exec(e.message)?.[1] ?? args.find((a) => a.startsWith('-') && !(a.replace(/^-+/, '').split('=')[0] in options));
      throw unknownOption(flag ?? '(unknown)', cmd);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /'(-[^' ]+)/.exec(e.message)?.[1];
      const option = flag ? cmd.options[flag.replace(/^-+/, '')] : undefined;
      if (flag && option?.type === 'string') throw new UsageError(`${flag} needs a value (${option.valueName ?? 'VALUE'})`);
      if (flag) throw new UsageError(`${flag} takes no value`);
    }
    throw err;
  }
}
