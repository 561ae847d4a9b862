// Validation helpers: every spec is checked with a zod schema and every problem is reported as
// `field: got <value>; <what is allowed>` so a user can fix a file without reading our code.
import { z } from 'zod';

/** One problem found in a spec: where it is, what was there, and what is allowed. */
export interface SpecIssue {
  /** Dotted path of the field, e.g. `stages[1].tp`. Empty for the document itself. */
  field: string;
  /** The value that was found there (undefined when the field is missing). */
  value: unknown;
  /** What is allowed, in words. */
  message: string;
}

export class SpecError extends Error {
  constructor(
    readonly what: string,
    readonly issues: SpecIssue[],
  ) {
    super(`invalid ${what}:\n${issues.map((i) => `  - ${formatIssue(i)}`).join('\n')}`);
    this.name = 'SpecError';
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

export function formatValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  try {
    const text = JSON.stringify(value);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  } catch {
    return String(value);
  }
}

/**
 * Issues of a part, named from the whole document: `field` is prefixed to each issue's field unless
 * the issue already names it (a catalog lookup names its own field "model": not "model.model").
 */
export function nestIssues(field: string, issues: readonly SpecIssue[]): SpecIssue[] {
  return issues.map((i) => ({
    ...i, field: !i.field || i.field === field ? field : i.field.startsWith(`${field}.`) ? i.field : `${field}.${i.field}`,
  }));
}

/** The value at a field path such as `plan.stages[1].tp` in `root` (undefined where the path leads nowhere). */
export function valueAtField(root: unknown, field: string): unknown {
  let cur: unknown = root;
  for (const key of field.split(/[.[\]]+/).filter(Boolean)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

export function formatIssue(issue: SpecIssue): string {
  const where = issue.field || '(document)';
  return `${where}: got ${formatValue(issue.value)}; ${issue.message}`;
}

function valueAt(data: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = data;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key as string];
  }
  return cur;
}

function describeZodIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `allowed: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_type':
      return `expected ${issue.expected}`;
    case 'too_small':
      return `must be ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}${issue.origin === 'array' ? ' items' : ''}`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}${issue.origin === 'array' ? ' items' : ''}`;
    case 'unrecognized_keys':
      return `unknown field(s) ${issue.keys.join(', ')}`;
    default:
      return issue.message;
  }
}

/** Converts zod's issues into SpecIssues (with the offending value looked up in the input). */
export function zodIssues(error: z.ZodError, data: unknown, prefix: ReadonlyArray<PropertyKey> = []): SpecIssue[] {
  return error.issues.map((issue) => {
    const path = [...prefix, ...issue.path];
    const isKeys = issue.code === 'unrecognized_keys';
    return {
      field: formatPath(path),
      value: isKeys ? undefined : valueAt(data, issue.path),
      message: describeZodIssue(issue),
    };
  });
}

/** Parses `data` with `schema` or throws a SpecError that lists every problem. */
export function parseSpec<S extends z.ZodType>(schema: S, data: unknown, what: string): z.output<S> {
  const res = schema.safeParse(data);
  if (!res.success) throw new SpecError(what, zodIssues(res.error, data));
  return res.data;
}
