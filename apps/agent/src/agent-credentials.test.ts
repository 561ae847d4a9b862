// Nobody can pose as a live agent. A real coordinator (in this process, over
// gRPC), a real agent process, and an impostor made of raw AgentControl calls.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { type AgentControlClient, callUnary, createClient, isRpcError, readStream, status } from '@mist/rpc';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentProcess, freePortRange, spawnAgent } from './test/helpers';
import { follow, lastState, TOKEN, tinySpec } from './test/jobs';

const AGENT_TOKEN = 'agents-only-token-123';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function agentProcess(address: string, env: Record<string, string>, extra: string[] = []): Promise<AgentProcess> {
  const ports = await freePortRange(16);
  const a = await spawnAgent(address, TOKEN, ['--cpu-devices', '4', '--host-name', 'host-a', '--address', '127.0.0.1', '--worker-ports', `${ports.first}:${ports.count}`, ...extra], env);
  cleanups.push(async () => {
    if (a.child.exitCode === null && a.child.signalCode === null) {
      a.child.kill('SIGTERM');
      await a.exited;
    }
  });
  return a;
}

function raw(address: string, token: string): AgentControlClient {
  const c = createClient('AgentControl', address, { token });
  cleanups.push(() => c.close());
  return c;
}

const registration = (agentId: string) => ({
  agentId, hostName: 'evil', address: '10.66.66.66', devices: [{ index: 0, kind: 'DEVICE_KIND_CPU' as const, name: 'cpu', gpu: '', memoryBytes: 1e9 }],
  backends: [], workerPorts: { first: 40000, count: 10 }, version: '0.1.0',
});

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/** A CA and certificates signed by it (CN = name) in `dir`, made by openssl. */
function makeCerts(dir: string, names: string[]): void {
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=mist-test-ca']);
  for (const name of names) {
    run(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${name === 'server' ? 'IP:127.0.0.1' : `DNS:${name}`}\n`);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
  }
}

async function codeOf(p: Promise<unknown>): Promise<number | string> {
  return p.then(() => 'ok', (e: unknown) => (isRpcError(e) ? e.code : String(e)));
}

describe('agent credentials (real coordinator and agent process)', () => {
  it('refuses an impostor registering, heartbeating or following commands as a live agent; the real one never flaps', async () => {
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, heartbeatTimeoutS: 4, stopGraceS: 1 });
    cleanups.push(() => coord.stop());
    const real = await agentProcess(coord.address, {});
    const impostor = raw(coord.address, TOKEN);

    const t0 = performance.now();
    expect(await codeOf(callUnary(impostor, 'register', registration(real.id)))).toBe(status.ALREADY_EXISTS);
    const detectMs = performance.now() - t0;
    expect(await codeOf(callUnary(impostor, 'register', { ...registration(real.id), sessionToken: 'f'.repeat(64) }))).toBe(status.ALREADY_EXISTS);
    expect(await codeOf(callUnary(impostor, 'heartbeat', { agentId: real.id, workers: [] }))).toBe(status.UNAUTHENTICATED);
    expect(await codeOf(callUnary(impostor, 'reportWorkerEvents', { agentId: real.id, events: [] }))).toBe(status.UNAUTHENTICATED);
    expect(await codeOf((async () => {
      for await (const _ of readStream(impostor.watchAssignments({ agentId: real.id }))) return 'got a command';
      return 'ended';
    })())).toBe(status.UNAUTHENTICATED);
    // Keep trying for a few heartbeats: the real agent keeps its id and never registers again.
    for (let i = 0; i < 20; i++) await codeOf(callUnary(impostor, 'register', registration(real.id)));
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());
    expect((await conn.agents()).map((a) => [a.agentId, a.address, a.state])).toEqual([[real.id, '127.0.0.1', 'AGENT_STATE_ALIVE']]);
    const job = await conn.submit(tinySpec(2, { dataPath: '' }));
    expect(lastState(await follow(conn, job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    expect(real.log.filter((l) => /registered again|register again|giving up/.test(l))).toEqual([]);
    expect(detectMs).toBeLessThan(1000);
  }, 60_000);

  it('with --agent-token, a user token cannot act as an agent and the agent token cannot act as a user', async () => {
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, agentToken: AGENT_TOKEN, stopGraceS: 1 });
    cleanups.push(() => coord.stop());
    const real = await agentProcess(coord.address, { MIST_AGENT_TOKEN: AGENT_TOKEN });
    expect(await codeOf(callUnary(raw(coord.address, TOKEN), 'register', registration('')))).toBe(status.UNAUTHENTICATED);
    const asUser = createClient('Coordinator', coord.address, { token: AGENT_TOKEN });
    cleanups.push(() => asUser.close());
    expect(await codeOf(callUnary(asUser, 'listAgents', {}))).toBe(status.UNAUTHENTICATED);
    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());
    expect((await conn.agents()).map((a) => a.agentId)).toEqual([real.id]);
  }, 60_000);

  it.skipIf(!haveOpenssl)('with mutual TLS, binds the agent id to its certificate\'s name', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-agent-tls-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    makeCerts(dir, ['server', 'agent-a', 'agent-b']);
    const read = (f: string): Buffer => fs.readFileSync(path.join(dir, f));
    const coord = await startCoordinator({
      listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 1,
      tls: { rootCert: read('ca.pem'), certChain: read('server.pem'), privateKey: read('server.key') },
    });
    cleanups.push(() => coord.stop());
    const real = await agentProcess(coord.address, {}, ['--tls-cert', path.join(dir, 'agent-a.pem'), '--tls-key', path.join(dir, 'agent-a.key'), '--tls-ca', path.join(dir, 'ca.pem')]);
    const other = createClient('AgentControl', coord.address, { token: TOKEN, tls: { rootCert: read('ca.pem'), certChain: read('agent-b.pem'), privateKey: read('agent-b.key') } });
    cleanups.push(() => other.close());
    const err = await callUnary(other, 'register', registration(real.id)).then(() => null, (e: unknown) => e);
    expect(isRpcError(err, status.ALREADY_EXISTS)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`agent id ${real.id} is bound to the certificate "agent-a"; register with "agent-b" refused`));
    expect(await codeOf(callUnary(other, 'heartbeat', { agentId: real.id, workers: [] }))).toBe(status.ALREADY_EXISTS);
  }, 60_000);
});
