// The CUDA matmul op (cuda/ops/matmul.cc) against the CPU kernel of the same name on the same inputs:
// every transpose combination, written and accumulated outputs, alpha != 1, in f32 and in the 16-bit
// storage dtypes, on the own kernels (cuda/kernels/gemm.cu) and, where cuBLASLt opened, on
// cuBLASLt (MIST_GEMM is read at every launch, so the test flips it). Skipped (with the reason)
// where no GPU and kernels are available.
import { afterEach, expect, it } from 'vitest';
import type { KernelOps } from '../../kernels/ops';
import { compareWithCpu, cudaStatus, describeCuda } from '../testing/compare';
import type { StorageDType } from '../testing/compare';
import { cudaAddon } from '../addon-cuda';
import { randn } from './values';

const DTYPES = ['f32', 'bf16', 'f16'] as const;
// [m, n, k]: a single element; odd sizes below one tile (element-wise loads); exactly one 128 tile;
// ragged tiles in every dimension with k not a multiple of the 32 k-tile; multiples of 8 with ragged
// tiles (16-byte cp.async with masked edge tiles); many full tiles.
const SHAPES: ReadonlyArray<readonly [number, number, number]> = [
  [1, 1, 1],
  [17, 33, 65],
  [128, 128, 128],
  [300, 200, 100],
  [200, 136, 72],
  [1024, 1024, 1024],
];
const TRANSPOSES = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;

// Both sides sum in fp32 (in different orders): |error| grows like k * eps * |terms| at worst, so
// atol scales with k. bf16/f16 outputs are rounded once on store (relative 2^-9, 2^-11).
function tolerance(dtype: StorageDType, k: number): { atol: number; rtol: number } {
  switch (dtype) {
    case 'f32':
      return { atol: 1e-6 * k, rtol: 1e-5 };
    case 'bf16':
      return { atol: 1e-3 + 1e-6 * k, rtol: 1e-2 };
    case 'f16':
      return { atol: 1e-3 + 1e-6 * k, rtol: 2e-3 };
  }
}

const originalGemm = process.env.MIST_GEMM;
function setPath(path: string): void {
  process.env.MIST_GEMM = path;
}
afterEach(() => {
  if (originalGemm === undefined) delete process.env.MIST_GEMM;
  else process.env.MIST_GEMM = originalGemm;
});

function cublasLtAvailable(): boolean {
  return cudaStatus().cublasLt.available;
}

describeCuda('CUDA matmul', () => {
  const paths = ['own', ...(cublasLtAvailable() ? ['cublaslt'] : [])];
  const cases = paths.flatMap((path) =>
    DTYPES.flatMap((dtype) =>
      SHAPES.flatMap(([m, n, k]) =>
        TRANSPOSES.map(([transA, transB]) => [path, dtype, m, n, k, transA ? 'T' : 'N', transB ? 'T' : 'N'] as const),
      ),
    ),
  );

  it.each(cases)('%s %s m=%i n=%i k=%i op(a)=%s op(b)=%s', (path, dtype, m, n, k, ta, tb) => {
    setPath(path);
    const transA = ta === 'T', transB = tb === 'T';
    const seed = m * 7 + n * 13 + k * 17 + (transA ? 1 : 0) + (transB ? 2 : 0);
    const a = randn(m * k, seed + 1);
    const b = randn(k * n, seed + 2);
    const tol = tolerance(dtype, k);

    // Written output: c starts as NaN, which a kernel that read it would propagate.
    const written = new Float32Array(m * n).fill(NaN);
    const r1 = compareWithCpu((ops: KernelOps) => ops.matmul({ c: written, a, b, m, n, k, transA, transB }), { dtype, ...tol });
    expect(r1.ok, r1.summary).toBe(true);

    // Accumulated output with alpha != 1: c += alpha op(a) op(b).
    const accumulated = randn(m * n, seed + 3);
    const r2 = compareWithCpu(
      (ops: KernelOps) => ops.matmul({ c: accumulated, a, b, m, n, k, transA, transB, accumulate: true, alpha: -0.75 }),
      { dtype, ...tol },
    );
    expect(r2.ok, r2.summary).toBe(true);

    // Written output with alpha != 1.
    const scaled = new Float32Array(m * n).fill(NaN);
    const r3 = compareWithCpu(
      (ops: KernelOps) => ops.matmul({ c: scaled, a, b, m, n, k, transA, transB, alpha: 1.5 }),
      { dtype, ...tol },
    );
    expect(r3.ok, r3.summary).toBe(true);
  });

  it('an unknown MIST_GEMM value throws naming the variable', () => {
    setPath('fastest');
    const c = new Float32Array(4);
    const a = randn(4, 1), b = randn(4, 2);
    expect(() => compareWithCpu((ops: KernelOps) => ops.matmul({ c, a, b, m: 2, n: 2, k: 2 }), { dtype: 'f32', atol: 0, rtol: 0 })).toThrow(
      /MIST_GEMM/,
    );
  });

  it('MIST_GEMM=cublaslt throws when cuBLASLt is absent, else runs it', () => {
    setPath('cublaslt');
    const c = new Float32Array(4);
    const a = randn(4, 1), b = randn(4, 2);
    const run = () => compareWithCpu((ops: KernelOps) => ops.matmul({ c, a, b, m: 2, n: 2, k: 2 }), { dtype: 'f32', atol: 1e-6, rtol: 1e-6 });
    if (cublasLtAvailable()) expect(run().ok).toBe(true);
    else expect(run).toThrow(/cuBLASLt is not available/);
  });

  it('the GEMM benchmark runs each path and reports it', () => {
    const addon = cudaAddon();
    const own = addon.cudaGemmBenchmark({ m: 256, n: 384, k: 200, dtype: 'bf16', path: 'own', iterations: 2 });
    expect(own.path).toBe('own');
    expect(own.ms).toBeGreaterThan(0);
    expect(own.tflops).toBeGreaterThan(0);
    const auto = addon.cudaGemmBenchmark({ m: 256, n: 384, k: 200, dtype: 'f16', iterations: 2, transA: true });
    expect(auto.path).toBe(cublasLtAvailable() ? 'cublaslt' : 'own');
    if (cublasLtAvailable()) {
      const lt = addon.cudaGemmBenchmark({ m: 256, n: 384, k: 200, dtype: 'f32', path: 'cublaslt', iterations: 2 });
      expect(lt.path).toBe('cublaslt');
    }
  });
});
