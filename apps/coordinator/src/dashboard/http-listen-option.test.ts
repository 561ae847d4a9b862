// `mist coordinator --http-listen HOST:PORT`: the readiness lines name the dashboard's URL; a bad
// address is refused naming the flag, and mutual TLS is refused as not implemented.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCoordinator } from '../run-coordinator';

const TOKEN = 'http-listen-test-token';

describe('--http-listen', () => {
  it('serves the dashboard beside the gRPC API and prints its URL', async () => {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-dashboard-'));
    const lines: string[] = [];
    let stop!: (why: string) => void;
    let announced!: (url: string) => void;
    const url = new Promise<string>((resolve) => { announced = resolve; });
    const running = runCoordinator({
      values: { listen: '127.0.0.1:0', state, token: TOKEN, 'http-listen': '127.0.0.1:0' },
      out: (l) => {
        lines.push(l);
        const m = /^coordinator dashboard on (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(l);
        if (m) announced(m[1]);
      },
      err: () => undefined,
      until: new Promise((resolve) => { stop = resolve; }),
    });
    const login = await fetch(`${await url}login`);
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('name="token"');
    expect(lines[0]).toMatch(/^coordinator listening on /);
    stop('test');
    await running;
    fs.rmSync(state, { recursive: true, force: true });
  });

  it('refuses a bad address naming the flag, and mutual TLS as not implemented', async () => {
    const run = (values: Record<string, string>) => runCoordinator({
      values: { listen: '127.0.0.1:0', state: ':memory:', token: TOKEN, ...values }, out: () => undefined, err: () => undefined, until: Promise.resolve('test'),
    });
    await expect(run({ 'http-listen': 'nowhere' })).rejects.toThrow(/--http-listen/);
    await expect(run({ 'http-listen': '127.0.0.1:0', 'tls-cert': 'a.pem', 'tls-key': 'k.pem', 'tls-ca': 'ca.pem' }))
      .rejects.toThrow(/--http-listen with mutual TLS is not implemented yet/);
  });
});
