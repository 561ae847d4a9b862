// Forgiving catalog names: vendors and users write `L4`, `H100`, `Llama-3-8B`, `llama2_7b` or
// `meta-llama/Llama-2-7b-hf` for what the catalogs call `l4`, `h100-sxm`, `llama3-8b` and `llama2-7b`.
// A name resolves, in order, by: exact match; the same letters ignoring case, `-`, `_` and spaces
// (dots are kept: `gpt3-1.3b` and `gpt3-13b` differ only by one); a declared alias; a unique
// catalog name that starts with the input followed by `-` (`h100` -> `h100-sxm`, GPUs only). An input that
// matches several names is refused with those names; an unknown one gets the nearest name by edit
// distance ("did you mean ...?") and the allowed list, as a SpecError naming the field.
import { SpecError } from './validation';

export interface NameLookup {
  /** What is looked up, for the error's title, e.g. `model`, `GPU`. */
  what: string;
  /** The field to name in the error, e.g. `model`, `gpu`. */
  field: string;
  /** The catalog's names, in display order. */
  names: readonly string[];
  /** Extra spellings: normalised alias -> catalog name. */
  aliases?: Readonly<Record<string, string>>;
  /**
   * Accept a unique catalog name that starts with the input and `-` (`h100` -> `h100-sxm`). Off for
   * models, where `llama` would pick `llama-tiny`; there such an input gets "did you mean".
   */
  acceptVariant?: boolean;
  /** Prefixes and suffixes vendors add that are not part of the name, e.g. `nvidia `, `-hf`. */
  strip?: { prefixes?: readonly string[]; suffixes?: readonly string[] };
}

/** Levenshtein distance (insertions, deletions and substitutions each cost 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The candidate closest to `input` (case-insensitive), or undefined when none is plausibly meant. */
export function nearestName(input: string, candidates: readonly string[]): string | undefined {
  const needle = input.toLowerCase();
  let best: { name: string; d: number } | undefined;
  for (const name of candidates) {
    const d = editDistance(needle, name.toLowerCase());
    if (!best || d < best.d) best = { name, d };
  }
  // A suggestion further away than this is a guess, not a typo (`foo` should not suggest `l4`).
  const limit = Math.max(2, Math.ceil(needle.length * 0.4));
  return best && best.d <= limit ? best.name : undefined;
}

function compact(text: string): string {
  return text.toLowerCase().replace(/[\s_-]+/g, '');
}

function stripAffixes(text: string, strip: NameLookup['strip']): string {
  let out = text.trim().toLowerCase();
  // A Hugging Face repository id `org/name`: the organisation is not part of the model's name.
  const slash = out.lastIndexOf('/');
  if (slash >= 0) out = out.slice(slash + 1);
  for (const p of strip?.prefixes ?? []) if (out.startsWith(p) && out.length > p.length) out = out.slice(p.length);
  for (const s of strip?.suffixes ?? []) if (out.endsWith(s) && out.length > s.length) out = out.slice(0, -s.length);
  // `nvidia-a100` less its prefix leaves `-a100`: separators at either end are not part of a name.
  return out.replace(/^[\s_-]+|[\s_-]+$/g, '');
}

/** Resolves `input` to one catalog name, or throws a SpecError that says what was meant or allowed. */
export function resolveName(input: string, lookup: NameLookup): string {
  const { names } = lookup;
  if (names.includes(input)) return input;
  const wanted = stripAffixes(input, lookup.strip);
  const key = compact(wanted);
  const same = names.filter((n) => compact(n) === key);
  if (same.length === 1) return same[0];
  const alias = lookup.aliases?.[key];
  if (alias !== undefined && names.includes(alias)) return alias;
  const starting = same.length > 1 ? same : names.filter((n) => n.toLowerCase().startsWith(`${wanted}-`));
  if (starting.length === 1 && lookup.acceptVariant === true) return starting[0];
  const allowed = `allowed: ${names.join(', ')}`;
  if (starting.length > 1) {
    throw new SpecError(lookup.what, [
      { field: lookup.field, value: input, message: `ambiguous: it could be ${starting.join(' or ')}; ${allowed}` },
    ]);
  }
  const near = starting.length === 1 ? starting[0] : nearestName(wanted, names);
  const message = near ? `did you mean "${near}"? ${allowed}` : allowed;
  throw new SpecError(lookup.what, [{ field: lookup.field, value: input, message }]);
}
