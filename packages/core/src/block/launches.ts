// How a block's backward forms each input gradient, and the kernels each op launches, as the
// executor runs the description (packages/executor/src/model/block-runner.ts) and the analyzer
// counts them (a launch cost per kernel). One rule for both:
//   'write'      the op's backward writes a fresh gradient buffer; when another consumer (later in
//                forward) already produced a gradient for that tensor, one extra kernel sums the two
//   'accumulate' adds into the gradient the residual stream already holds (the norms), or into a
//                fresh zeroed one where no later op produced one (the head's final norm)
//   'inplace'    transforms the existing gradient in place (RoPE)
//   'copy'       the residual stream's gradient is a copy of the output's (one kernel)
//   'alias'      the branch's gradient is the output's gradient itself (no kernel)
import type { BlockDescription, BlockOp } from './types';

export type GradMode = 'write' | 'accumulate' | 'inplace' | 'copy' | 'alias';

/** The gradient rule of each of the op's inputs (empty for ops whose backward touches none). */
export function inputGradModes(op: BlockOp): GradMode[] {
  switch (op.kind) {
    case 'norm': return ['accumulate'];
    case 'rope': return op.inputs.map(() => 'inplace');
    // With dropout the branch's gradient is dy * mask / (1 - p), a fresh buffer.
    case 'residual': return ['copy', op.dropout ? 'write' : 'alias'];
    case 'branchSum': return op.inputs.map(() => 'alias');
    case 'tpEntry': case 'tpExit': case 'embedding': return [];
    // The router's expert indices and the dispatch's index input take no gradient.
    case 'router': return ['write'];
    case 'allToAll': return ['write'];
    case 'crossEntropy': return ['write'];
    default: return op.inputs.map(() => 'write');
  }
}

/** Kernels an op launches: main ones (GEMMs, the op's own) and helpers (bias add/gradient, gradient sums). */
export interface OpLaunches {
  forward: number;
  forwardAux: number;
  backward: number;
  backwardAux: number;
}

function mainLaunches(op: BlockOp): OpLaunches {
  const n = (forward: number, backward: number, forwardAux = 0, backwardAux = 0): OpLaunches => ({ forward, forwardAux, backward, backwardAux });
  switch (op.kind) {
    case 'linear': return n(op.weights.length, 2 * op.weights.length, op.biases.length, op.biases.length);
    case 'scores': case 'values': return n(1, 2);
    case 'rope': return n(op.inputs.length, op.inputs.length);
    case 'branchSum': return n(1, 0);
    case 'residual': return n(1, op.dropout ? 2 : 1);
    case 'tpEntry': case 'tpExit': return n(0, 0);
    // The loss's backward: one kernel on a backend that runs it apart (the CPU executor writes the
    // logits' gradient in the forward kernel; its profile marks cross_entropy fusedIntoForward).
    case 'crossEntropy': return n(1, 1);
    default: return n(1, 1);
  }
}

/**
 * Launches per op of a block (keyed by op name). The gradient sums of a tensor read by several
 * 'write' consumers are counted on the op whose backward launches them (the earlier consumer).
 */
export function blockLaunches(block: BlockDescription): Map<string, OpLaunches> {
  const out = new Map<string, OpLaunches>();
  for (const flash of [true, false]) {
    const running = block.ops.filter((o) => !o.when || (o.when === 'flash') === flash);
    const hasGrad = new Set<string>([block.output]);
    for (const op of [...running].reverse()) {
      const l = mainLaunches(op);
      const modes = inputGradModes(op);
      op.inputs.forEach((tensor, i) => {
        const mode = modes[i];
        if (!mode) return;
        if (mode === 'write' && hasGrad.has(tensor)) l.backwardAux += 1;
        if (mode === 'inplace' && !hasGrad.has(tensor)) {
          throw new Error(`block op ${op.name}: its backward transforms the gradient of ${tensor} in place, but no later op produced one`);
        }
        if ((mode === 'copy' || mode === 'alias') && hasGrad.has(tensor)) {
          throw new Error(`not implemented: block op ${op.name} ${mode === 'copy' ? 'copies' : 'aliases'} a gradient into ${tensor}, which already has one`);
        }
        hasGrad.add(tensor);
      });
      const seen = out.get(op.name);
      if (seen && JSON.stringify(seen) !== JSON.stringify(l)) {
        throw new Error(`block op ${op.name}: launches differ with and without flash attention`);
      }
      out.set(op.name, l);
    }
  }
  return out;
}
