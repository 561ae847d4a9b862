// The kernels Transformer Engine adds around an fp8 linear layer, as an element-wise op of the op
// graph (memory-bound: roofline bytes / bandwidth plus launches).
//
// Forward: the bf16 input is cast to fp8 together with its transpose (TE's fused cast-transpose):
// the fp8 row-wise copy feeds the forward GEMM, the column-wise one is kept for the weight-gradient
// GEMM. Backward: the incoming gradient is cast and transposed the same way (the dgrad GEMM reads
// the row-wise copy, the wgrad GEMM the column-wise one). Each cast reads e bytes per element and
// writes 1 + 1. With current scaling (Float8CurrentScaling) the tensor's amax is computed just before
// its cast, one more read of it and one more kernel; with delayed scaling the amax is a by-product of
// the cast (recorded into the amax history) and the scale comes from the history of earlier steps.
// Source: TransformerEngine, transformer_engine/pytorch/module/linear.py (quantizers' usages) and
// transformer_engine/common/recipe/__init__.py (DelayedScaling, Float8CurrentScaling).
import { type Fp8Recipe } from '@mist/core';
import { add, type Expr, mul, num } from './expr';
import type { Op } from './op-graph';

/** Bytes written per element by a cast-transpose: the fp8 row-wise and column-wise copies. */
const CAST_TRANSPOSE_WRITES = 2;

/**
 * The cast kernels of the fp8 linear op `linear`: `inputElements` (rows x inner) cast in forward,
 * `outputElements` (rows x cols, its gradient) in backward, `e` bytes per compute-dtype element.
 */
export function fp8CastOp(linear: string, inputElements: Expr, outputElements: Expr, e: number, recipe: Fp8Recipe): Op {
  if (recipe === 'none') throw new Error(`fp8CastOp: ${linear} has no fp8 cast with fp8 'none'`);
  const current = recipe === 'current';
  const castBytes = (n: Expr): Expr => add(mul(e + CAST_TRANSPOSE_WRITES, n), current ? mul(e, n) : num(0));
  const kernels = current ? 2 : 1;
  return {
    name: `${linear}.fp8_cast`,
    kind: 'elementwise',
    when: num(1),
    elements: inputElements,
    fwdFlops: num(0),
    bwdFlops: num(0),
    fwdBytes: castBytes(inputElements),
    bwdBytes: castBytes(outputElements),
    fwdKernels: kernels,
    bwdKernels: kernels,
    fwdAux: 0,
    bwdAux: 0,
    saved: num(0),
    comm: [],
  };
}
