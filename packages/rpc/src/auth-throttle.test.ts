// The refused-token throttle on its own clock: rate-limited log lines, a back-off after too many
// refusals within the window, its growth and its end. (The same behaviour against a real
// coordinator process: apps/coordinator/src/reliability.test.ts.)
import { describe, expect, it } from 'vitest';
import { AuthThrottle, peerHost } from './index';

function setup(extra: Partial<ConstructorParameters<typeof AuthThrottle>[0]> = {}) {
  const lines: string[] = [];
  const clock = { t: 1000 };
  const t = new AuthThrottle({ maxFailures: 3, windowS: 10, backoffS: 2, maxBackoffS: 5, logIntervalS: 30, log: (l) => lines.push(l), now: () => clock.t, ...extra });
  return { t, lines, clock };
}

describe('auth throttle', () => {
  it('takes the host of a peer string without its port', () => {
    expect(peerHost('127.0.0.1:53211')).toBe('127.0.0.1');
    expect(peerHost('::ffff:10.0.0.2:7070')).toBe('::ffff:10.0.0.2');
    expect(peerHost('unknown')).toBe('unknown');
  });

  it('logs a peer once per interval, counting the refusals in between, and never the token', () => {
    const { t, lines, clock } = setup({ maxFailures: 100 });
    t.refused('10.0.0.5:1111', '/mist.v1.Coordinator/ListJobs', 'user token');
    t.refused('10.0.0.5:2222', '/mist.v1.Coordinator/ListJobs', 'user token');
    t.refused('10.0.0.6:3333', '/mist.v1.AgentControl/Heartbeat', 'agent token');
    expect(lines).toEqual([
      'refused /mist.v1.Coordinator/ListJobs from 10.0.0.5: missing or wrong user token',
      'refused /mist.v1.AgentControl/Heartbeat from 10.0.0.6: missing or wrong agent token',
    ]);
    clock.t += 30;
    t.refused('10.0.0.5:4444', '/mist.v1.Coordinator/GetJob', 'user token');
    expect(lines[2]).toBe('refused /mist.v1.Coordinator/GetJob from 10.0.0.5: missing or wrong user token (+1 more refused call(s) from it since the last line)');
  });

  it('throttles a peer after maxFailures within the window, with a back-off that doubles up to the cap', () => {
    const { t, lines, clock } = setup();
    const p = '10.0.0.7:1';
    // Two refusals, then the window passes: no throttling.
    t.refused(p, 'm', 'token');
    t.refused(p, 'm', 'token');
    clock.t += 11;
    t.refused(p, 'm', 'token');
    expect(t.verdict(p)).toEqual({ throttled: false });
    t.refused(p, 'm', 'token');
    t.refused(p, 'm', 'token');
    expect(lines.at(-1)).toBe('throttling 10.0.0.7 for 2 s: 3 refused calls within 10 s');
    expect(t.verdict('10.0.0.7:999')).toEqual({ throttled: true, retryAfterS: 2 });
    expect(t.verdict('10.0.0.8:1')).toEqual({ throttled: false });
    clock.t += 2;
    expect(t.verdict(p)).toEqual({ throttled: false });
    for (let i = 0; i < 3; i++) t.refused(p, 'm', 'token');
    expect(t.verdict(p)).toEqual({ throttled: true, retryAfterS: 4 });
    clock.t += 4;
    for (let i = 0; i < 3; i++) t.refused(p, 'm', 'token');
    expect(t.verdict(p)).toEqual({ throttled: true, retryAfterS: 5 });
    // A quiet maxBackoffS + windowS: the growth starts over.
    clock.t += 5 + 16;
    for (let i = 0; i < 3; i++) t.refused(p, 'm', 'token');
    expect(t.verdict(p)).toEqual({ throttled: true, retryAfterS: 2 });
  });

  it('refuses absurd limits, naming them', () => {
    expect(() => new AuthThrottle({ maxFailures: 0 })).toThrow(/maxFailures must be an integer >= 1/);
    expect(() => new AuthThrottle({ windowS: 0 })).toThrow(/windowS must be a positive/);
    expect(() => new AuthThrottle({ backoffS: 10, maxBackoffS: 5 })).toThrow(/maxBackoffS \(5\) must be at least backoffS \(10\)/);
  });
});
