// The coordinator's process entry as a real process (test/processes.ts): readiness line, a clean exit
// on SIGTERM, state kept across restarts, and mutual TLS with a real agent process.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CoordinatorConnection } from '@mist/coordinator';
import { SpecError } from '@mist/core';
import { afterEach, describe, expect, it } from 'vitest';
import { startFromArgs } from './run-coordinator';
import { ProcessHarness } from './test/processes';

const TOKEN = 'coord-process-token';
const h = new ProcessHarness(TOKEN, 'mist-coordproc-');
afterEach(() => h.cleanup());

describe('the coordinator process', () => {
  it('serves until SIGTERM and exits 0, keeping its database', async () => {
    const state = h.tmpDir();
    const first = await h.coordinatorProcess(state);
    const address = first.match[1];
    const conn = new CoordinatorConnection(address, { token: TOKEN });
    h.defer(() => conn.close());
    expect(await conn.agents()).toEqual([]);
    // No agent yet: refused, with the reason, and nothing recorded.
    await expect(conn.submit({ name: 'x', model: { name: 'gpt-tiny' }, trainingJson: '{"globalBatch":8,"seqLen":64}', tune: {}, run: { steps: 1 } }))
      .rejects.toThrow(/no live agent is registered/);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.stderr.join('\n')).toMatch(/SIGTERM: stopping/);
    expect(fs.existsSync(path.join(state, 'coordinator.sqlite'))).toBe(true);
  });

  it('refuses bad options with a clear message', async () => {
    await expect(startFromArgs({ token: 't' }, {}, () => undefined)).rejects.toThrow(/--state DIR is required/);
    await expect(startFromArgs({ state: ':memory:' }, {}, () => undefined)).rejects.toThrow(/a token is required/);
    const token = 'a-long-enough-token';
    await expect(startFromArgs({ state: ':memory:', token: 't' }, {}, () => undefined)).rejects.toThrow(/--token.*at least 12 characters/);
    await expect(startFromArgs({ state: ':memory:', token, 'tls-cert': 'x' }, {}, () => undefined)).rejects.toThrow(/--tls-cert, --tls-key and --tls-ca together/);
    await expect(startFromArgs({ state: ':memory:', token, 'heartbeat-timeout': '-1' }, {}, () => undefined)).rejects.toThrow(/--heartbeat-timeout.*"-1".*expected seconds in \[0.5, 3600\]/);
    // Absurd values (review E7): a heartbeat timeout of a millisecond, a grace beyond Node's timers.
    await expect(startFromArgs({ state: ':memory:', token, 'heartbeat-timeout': '0.001' }, {}, () => undefined)).rejects.toThrow(SpecError);
    await expect(startFromArgs({ state: ':memory:', token, 'stop-grace': '1e12' }, {}, () => undefined)).rejects.toThrow(/--stop-grace/);
    await expect(startFromArgs({ state: ':memory:', token, 'log-max-bytes': '12.5' }, {}, () => undefined)).rejects.toThrow(/--log-max-bytes/);
  });

  const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
  it.skipIf(!haveOpenssl)('speaks mutual TLS with an agent process and refuses a plaintext client', async () => {
    const dir = h.tmpDir();
    const openssl = (args: string[]) => {
      const res = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${res.stderr}`);
    };
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=mist-test-ca']);
    for (const [name, san] of [['server', 'IP:127.0.0.1'], ['client', 'DNS:mist-agent']]) {
      openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
      fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
    }
    const f = (n: string) => path.join(dir, n);
    const coord = await h.coordinatorProcess(f('state'), ['--tls-cert', f('server.pem'), '--tls-key', f('server.key'), '--tls-ca', f('ca.pem')]);
    const address = coord.match[1];
    const agent = await h.agentProcess(address, 'tls-host', 1, {}, ['--tls-cert', f('client.pem'), '--tls-key', f('client.key'), '--tls-ca', f('ca.pem')]);
    const secure = new CoordinatorConnection(address, { token: TOKEN, tls: { rootCert: fs.readFileSync(f('ca.pem')), certChain: fs.readFileSync(f('client.pem')), privateKey: fs.readFileSync(f('client.key')) } });
    h.defer(() => secure.close());
    expect((await secure.agents()).map((a) => [a.agentId, a.hostName])).toEqual([[agent.match[1], 'tls-host']]);
    const plain = new CoordinatorConnection(address, { token: TOKEN }, 5);
    h.defer(() => plain.close());
    await expect(plain.agents()).rejects.toThrow(/cannot reach the coordinator/);
  });
});
