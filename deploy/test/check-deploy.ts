// Checks of the deploy files against the CLI. Each check returns the problems it found (an empty
// list when all is well), so that a test can also feed it a broken copy and expect a complaint.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEPLOY, envVarsNamed } from './cli-surface';

/** One `mist SUB --flag ...` found in a file. */
export interface Invocation {
  file: string;
  sub: string;
  flags: string[];
  /** The arguments after the sub-command, as written (for port checks). */
  args: string[];
}

/** Shell-like text (scripts, Dockerfile RUN/CMD, systemd ExecStart): comment lines dropped, `\` continuations joined. */
export function logicalLines(text: string): string[] {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  return lines.join('\n').replace(/\\\n/g, ' ').split('\n');
}

/**
 * `mist SUB ...` in shell-like text. The command word is `mist` (or a path ending in /mist), the
 * script's `"${mist_cmd[@]}"`, or `exec "$@"` in a `bash -c` string whose "$@" is mist. The
 * arguments run to the end of the command: a redirection, pipe, `&`, `;` or closing quote.
 */
export function shellInvocations(file: string, text: string): Invocation[] {
  const out: Invocation[] = [];
  const command = /(?:(?<![\w./-])(?:\/[\w./-]*\/)?mist(?:\.js)?|"\$\{mist_cmd\[@\]\}"|exec "\$@")\s+([a-z][a-z-]*)(?=\s|$)([^>|&;']*)/g;
  for (const line of logicalLines(text)) {
    for (const m of line.matchAll(command)) {
      const args = m[2].trim().split(/\s+/).filter(Boolean).map((a) => a.replace(/^"|"$/g, ''));
      out.push({ file, sub: m[1], args, flags: flagsOf(args) });
    }
  }
  return out;
}

export function flagsOf(args: readonly string[]): string[] {
  return args.filter((a) => /^--[a-z]/.test(a)).map((a) => a.slice(2).split('=')[0]);
}

/** An argument list given to the image's entrypoint (`mist`): args[0] is the sub-command. */
export function argvInvocation(file: string, argv: readonly string[]): Invocation {
  const args = argv.slice(1).map(String);
  return { file, sub: String(argv[0]), args, flags: flagsOf(args) };
}

/** The value after `--flag` (or in `--flag=value`). */
export function flagValue(inv: Invocation, flag: string): string | undefined {
  for (let i = 0; i < inv.args.length; i++) {
    if (inv.args[i] === `--${flag}`) return inv.args[i + 1];
    if (inv.args[i].startsWith(`--${flag}=`)) return inv.args[i].slice(flag.length + 3);
  }
  return undefined;
}

/** The port of `HOST:PORT` (or of a bare number). */
export const portOf = (hostPort: string | undefined): number => Number(String(hostPort).split(':').pop());

/** Problems of invocations against the CLI: unknown sub-commands and flags. */
export function checkInvocations(invocations: readonly Invocation[], cli: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  for (const inv of invocations) {
    const flags = cli.get(inv.sub);
    if (!flags) {
      problems.push(`${inv.file}: \`mist ${inv.sub}\` is not a mist command (${[...cli.keys()].join(', ')})`);
      continue;
    }
    for (const f of inv.flags) if (!flags.has(f)) problems.push(`${inv.file}: \`mist ${inv.sub}\` has no flag --${f}`);
  }
  return problems;
}

/** Problems of MIST_* names in a text: each must be read somewhere in the code. */
export function checkEnvVars(file: string, text: string, known: Set<string>): string[] {
  return envVarsNamed(text).filter((n) => !known.has(n)).map((n) => `${file}: ${n} is not an environment variable Mist reads`);
}

/** Every YAML document of a file, parsed (throws with the file name on a syntax error). */
export function yamlDocs(file: string, text = fs.readFileSync(path.join(DEPLOY, file), 'utf8')): unknown[] {
  // merge: compose files use YAML merge keys (`<<: *anchor`), which Docker Compose supports.
  const docs = parseAllDocuments(text, { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS({ maxAliasCount: 100 }) as unknown;
  }).filter((d) => d !== null && d !== undefined);
}

export interface Dockerfile {
  stages: Array<{ from: string; name?: string; instructions: Array<{ op: string; value: string }> }>;
  args: Record<string, string>;
}

/** A Dockerfile's stages and their instructions (continuations joined, comments dropped). */
export function parseDockerfile(text: string): Dockerfile {
  const out: Dockerfile = { stages: [], args: {} };
  for (const line of logicalLines(text)) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, op, value] = m;
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(value.trim())!;
      const image = from[1].replace(/\$\{(\w+)\}/g, (_s, n: string) => out.args[n] ?? `\${${n}}`);
      out.stages.push({ from: image, name: from[2], instructions: [] });
    } else if (op === 'ARG' && out.stages.length === 0) {
      const [k, v] = value.trim().split('=');
      out.args[k] = v ?? '';
    } else if (out.stages.length > 0) out.stages[out.stages.length - 1].instructions.push({ op, value: value.trim() });
  }
  return out;
}
