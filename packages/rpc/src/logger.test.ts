import { describe, expect, it } from 'vitest';
import { createLogger, lineFields, parseLogFormat, parseLogLevel } from './logger';

describe('lineFields', () => {
  it('reads the job, attempt, rank and agent ids and the level out of the usual lines', () => {
    expect(lineFields('job j-12.a attempt 2: starting rank(s) 0, 1')).toEqual({ level: 'info', fields: { job: 'j-12.a', attempt: 2, ranks: [0, 1] } });
    expect(lineFields('job j7 rank 3: the coordinator refused an event for good')).toEqual({ level: 'info', fields: { job: 'j7', rank: 3 } });
    expect(lineFields('agent host-a-1 (host-a) lost after 10.2 s of silence')).toEqual({ level: 'info', fields: { agent: 'host-a-1' } });
    expect(lineFields('job j9: running')).toEqual({ level: 'info', fields: { job: 'j9' } });
    expect(lineFields('ERROR: /x/coordinator.sqlite was deleted').level).toBe('error');
    expect(lineFields('WARNING: serving on 0.0.0.0:7070 without TLS').level).toBe('warn');
    expect(lineFields('SIGTERM: stopping the agent is stopping')).toEqual({ level: 'info', fields: {} });
  });
});

describe('createLogger', () => {
  it('writes the usual prefixed line in text format', () => {
    const out: string[] = [];
    const log = createLogger({ format: 'text', name: 'coordinator', write: (l) => out.push(l) });
    log.line('job j1: running');
    expect(out).toEqual(['[coordinator] job j1: running']);
  });

  it('writes one JSON object per line with level, time, name, ids and base fields, and drops lines below the level', () => {
    const out: string[] = [];
    const log = createLogger({ format: 'json', level: 'info', name: 'agent', write: (l) => out.push(l), base: () => ({ agent: 'a-1' }) });
    log.line('job j1 attempt 0: starting rank(s) 2');
    log.line('WARNING: slow');
    log.log('debug', 'not written');
    expect(out).toHaveLength(2);
    const first = JSON.parse(out[0]) as Record<string, unknown>;
    expect(first).toMatchObject({ level: 'info', name: 'agent', msg: 'job j1 attempt 0: starting rank(s) 2', job: 'j1', attempt: 0, rank: 2, agent: 'a-1', pid: process.pid });
    expect(Number.isNaN(Date.parse(first.time as string))).toBe(false);
    expect(JSON.parse(out[1])).toMatchObject({ level: 'warn', msg: 'WARNING: slow' });
    expect(out.every((l) => !l.includes('\n'))).toBe(true);
  });

  it('parses --log-format and --log-level, naming the allowed values', () => {
    expect(parseLogFormat(undefined)).toBe('text');
    expect(parseLogFormat('json')).toBe('json');
    expect(() => parseLogFormat('xml')).toThrow('--log-format: got "xml"; expected one of text, json');
    expect(parseLogLevel('warn')).toBe('warn');
    expect(() => parseLogLevel('loud')).toThrow('expected one of debug, info, warn, error');
  });
});
