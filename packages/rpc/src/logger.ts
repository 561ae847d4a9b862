// The processes' log: the human lines they have always written (`--log-format text`, the default),
// or one JSON object per line through pino (`--log-format json`) with a level, a time, the process
// name and, where they apply, the job, attempt, rank and agent ids. The coordinator and the agent
// write their lines as "job J attempt A: ...", "job J rank R: ...", "agent A ...", "ERROR: ...":
// lineFields() reads those ids (and the level) back out, so every existing call site gets
// structured fields without changing what it writes.
import type * as Pino from 'pino';

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Ids a line is about. */
export interface LogFields {
  job?: string;
  attempt?: number;
  rank?: number;
  /** Several ranks ("starting rank(s) 0, 1"). */
  ranks?: number[];
  agent?: string;
}

export interface LoggerOptions {
  format: LogFormat;
  /** Lines below this level are not written (default info). */
  level?: LogLevel;
  /** The process: "coordinator" or "agent" (text lines are prefixed `[name] `). */
  name: string;
  /** Where a finished line goes, without its newline. */
  write: (line: string) => void;
  /** Fields on every line (e.g. the agent's id once registered); read at each line. */
  base?: () => LogFields;
}

export interface Logger {
  /** Writes a line at `level`, with `fields` added to what the text itself names. */
  log(level: LogLevel, text: string, fields?: LogFields): void;
  /** A line in the processes' usual wording: the level and the ids come from the text (lineFields). */
  line(text: string): void;
}

const RANK = /\brank(?:\(s\))? (\d+(?:, \d+)*)/;

/** The level and ids a human log line names (see the file comment for the wording it reads). */
export function lineFields(text: string): { level: LogLevel; fields: LogFields } {
  const level: LogLevel = /^(ERROR|FATAL)\b/.test(text) ? 'error' : /^WARN(ING)?\b/.test(text) ? 'warn' : 'info';
  const fields: LogFields = {};
  // Job ids are A-Z a-z 0-9 . _ - (packages/coordinator job-limits.ts); agent ids likewise.
  const job = /\bjob ([A-Za-z0-9._-]+?)(?=[:\s(]|$)/.exec(text);
  if (job) fields.job = job[1];
  const attempt = /\battempt (\d+)/.exec(text);
  if (attempt) fields.attempt = Number(attempt[1]);
  const rank = RANK.exec(text);
  if (rank) {
    const list = rank[1].split(', ').map(Number);
    if (list.length === 1) fields.rank = list[0];
    else fields.ranks = list;
  }
  const agent = /\bagent ([A-Za-z0-9._-]+?)(?=[:\s(]|$)/.exec(text);
  if (agent && agent[1] !== 'is' && agent[1] !== 'id') fields.agent = agent[1];
  return { level, fields };
}

/** Parses `--log-format`; throws naming the flag and the allowed values. */
export function parseLogFormat(value: string | undefined, flag = '--log-format'): LogFormat {
  if (value === undefined) return 'text';
  if ((LOG_FORMATS as readonly string[]).includes(value)) return value as LogFormat;
  throw new Error(`${flag}: got "${value}"; expected one of ${LOG_FORMATS.join(', ')}`);
}

/** Parses `--log-level`; throws naming the flag and the allowed values. */
export function parseLogLevel(value: string | undefined, flag = '--log-level'): LogLevel {
  if (value === undefined) return 'info';
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new Error(`${flag}: got "${value}"; expected one of ${LOG_LEVELS.join(', ')}`);
}

const RANK_OF: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(o: LoggerOptions): Logger {
  const threshold = RANK_OF[o.level ?? 'info'];
  let emit: (level: LogLevel, text: string, fields: LogFields) => void;
  if (o.format === 'text') {
    emit = (_level, text) => o.write(`[${o.name}] ${text}`);
  } else {
    // pino writes synchronously into any object with write(); each call is one line ending in "\n".
    // Loaded only for JSON logs (not by every importer of @mist/rpc).
    const pino = require('pino') as typeof Pino.default;
    const p = pino({
      name: o.name,
      level: o.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    }, { write: (chunk: string) => o.write(chunk.replace(/\n$/, '')) });
    emit = (level, text, fields) => p[level](fields, text);
  }
  const log = (level: LogLevel, text: string, fields: LogFields = {}): void => {
    if (RANK_OF[level] < threshold) return;
    emit(level, text, { ...o.base?.(), ...fields });
  };
  return {
    log,
    line: (text) => {
      const { level, fields } = lineFields(text);
      log(level, text, fields);
    },
  };
}
