// The NCCL backend on a machine without NCCL (and without a GPU): its absence is reported with the
// loader's reason, and every NCCL entry point fails with a clear error instead of crashing.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backends, createCommunicator, deviceAlloc, ncclGetUniqueId } from './index';

const nccl = backends().find((b) => b.name === 'nccl');

describe('backends()', () => {
  it('always offers the cpu backend', () => {
    expect(backends()).toContainEqual({ name: 'cpu', available: true });
  });

  it.skipIf(nccl?.available)('reports nccl unavailable with the dlopen reason', () => {
    expect(nccl).toMatchObject({ name: 'nccl', available: false });
    expect(nccl?.reason).toMatch(/libnccl\.so/);
  });

  it.skipIf(nccl?.available)('searches MIST_NCCL_PATH and names it in the reason', () => {
    const moduleRoot = path.resolve(__dirname, '../..');
    const script = `console.log(JSON.stringify(require('bindings')({ bindings: 'mist_native', module_root: ${JSON.stringify(moduleRoot)} }).collectivesBackends()))`;
    const out = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, MIST_NCCL_PATH: '/nonexistent/nccl/lib' },
      encoding: 'utf8',
      cwd: moduleRoot,
    });
    expect(out.status).toBe(0);
    const reported = JSON.parse(out.stdout) as { name: string; reason?: string }[];
    expect(reported[1].reason).toMatch(/MIST_NCCL_PATH: \/nonexistent\/nccl\/lib: cannot open shared object file/);
  });
});

describe.skipIf(nccl?.available)('nccl entry points without NCCL', () => {
  it('createCommunicator rejects with the reason', async () => {
    await expect(
      createCommunicator({ backend: 'nccl', rank: 0, worldSize: 2, uniqueId: new Uint8Array(128) }),
    ).rejects.toThrow(/^createCommunicator: NCCL backend unavailable: .*libnccl\.so/);
  });

  it('ncclGetUniqueId throws with the reason', () => {
    expect(() => ncclGetUniqueId()).toThrow(/^ncclGetUniqueId: NCCL backend unavailable/);
  });

  it('deviceAlloc throws when CUDA cannot be used', () => {
    expect(() => deviceAlloc(1024)).toThrow(/^deviceAlloc: CUDA runtime unavailable: /);
  });
});
