// A tiny parser of `--flag value...` argument lists (Megatron-LM's argparse style): every word after a
// flag up to the next `--flag` is one of its values; `--flag=value` is accepted too.
export interface ParsedFlag {
  flag: string;
  values: string[];
}

export function parseFlags(argv: readonly string[]): { flags: ParsedFlag[]; stray: string[] } {
  const flags: ParsedFlag[] = [];
  const stray: string[] = [];
  for (const word of argv) {
    if (word.startsWith('--') && word.length > 2 && !/^--?\d/.test(word)) {
      const eq = word.indexOf('=');
      if (eq > 0) flags.push({ flag: word.slice(0, eq), values: [word.slice(eq + 1)] });
      else flags.push({ flag: word, values: [] });
    } else if (flags.length > 0) {
      flags[flags.length - 1].values.push(word);
    } else {
      stray.push(word);
    }
  }
  return { flags, stray };
}

/** Last value of each flag (argparse keeps the last occurrence). */
export function flagMap(flags: readonly ParsedFlag[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const f of flags) m.set(f.flag, f.values);
  return m;
}
