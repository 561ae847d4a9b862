// Mutual TLS with certificates made offline by openssl (skipped where openssl is missing).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addService, callUnary, createClient, createServer, isRpcError, type RpcServer, startServer, status, stopServer,
  type TlsOptions } from './index';

vi.setConfig({ testTimeout: 20_000 });
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
const TOKEN = 'tls-test-token';

function openssl(dir: string, args: string[]): void {
  const res = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${res.stderr}`);
}

/** A CA, and a certificate signed by it for `name` (with the given subjectAltName). */
function makeCerts(dir: string) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=mist-test-ca']);
  const leaf = (name: string, san: string) => {
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`]);
  };
  leaf('server', 'IP:127.0.0.1,DNS:localhost');
  leaf('client', 'DNS:mist-agent');
  const read = (f: string) => fs.readFileSync(path.join(dir, f));
  const side = (name: string): TlsOptions => ({ rootCert: read('ca.pem'), certChain: read(`${name}.pem`), privateKey: read(`${name}.key`) });
  return { server: side('server'), client: side('client') };
}

describe.skipIf(!haveOpenssl)('mutual TLS', () => {
  let dir: string;
  let certs: ReturnType<typeof makeCerts>;
  let server: RpcServer;
  let address: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-rpc-tls-'));
    certs = makeCerts(dir);
    server = createServer({ token: TOKEN, tls: certs.server });
    addService(server, 'Profiler', {
      Profile(call, callback) {
        // Not a measurement: this service only proves the secured channel carries a call both ways.
        callback(null, { profileJson: JSON.stringify({ quick: call.request.quick }) });
      },
    });
    address = `127.0.0.1:${await startServer(server, '127.0.0.1:0')}`;
  });

  afterAll(async () => {
    if (server) await stopServer(server, 1);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('calls through TLS with a client certificate and the token', async () => {
    const client = createClient('Profiler', address, { token: TOKEN, tls: certs.client });
    const res = await callUnary(client, 'profile', { quick: true });
    expect(JSON.parse(res.profileJson)).toEqual({ quick: true });
    client.close();
  });

  it('still checks the token over TLS', async () => {
    const client = createClient('Profiler', address, { token: 'wrong', tls: certs.client });
    const err = await callUnary(client, 'profile', { quick: true }).catch((e: unknown) => e);
    expect(isRpcError(err, status.UNAUTHENTICATED)).toBe(true);
    client.close();
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const otherDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-rpc-tls-other-'));
    try {
      const other = makeCerts(otherDir);
      // Trusts the real server's CA but presents a certificate of a foreign CA.
      const client = createClient('Profiler', address, {
        token: TOKEN, tls: { ...other.client, rootCert: certs.client.rootCert },
      });
      const err = await callUnary(client, 'profile', { quick: true }, { deadline: new Date(Date.now() + 5000) })
        .catch((e: unknown) => e);
      expect(isRpcError(err, status.UNAVAILABLE)).toBe(true);
      client.close();
    } finally {
      fs.rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('refuses a plaintext client', async () => {
    const client = createClient('Profiler', address, { token: TOKEN });
    const err = await callUnary(client, 'profile', { quick: true }, { deadline: new Date(Date.now() + 5000) })
      .catch((e: unknown) => e);
    expect(isRpcError(err, status.UNAVAILABLE)).toBe(true);
    client.close();
  });
});
