// Whether the stage model reads the pipeline depth pp (the query's PP column), which decides whether
// a stage group's frontiers can serve every depth or must be made per depth (enumerate.ts
// stageGroupSpecs `perDepth`, inter-stage-instance.ts `frontiersPerDepth`).
//
// The analyzer reads pp only in the all-busy terms of a measured profile (stage-model.ts busyShare:
// the devices a plan keeps busy on a node, pp x the stage's devices per node; and a pipeline stage's
// module-pass figure): a datasheet profile has none, and then every output is the same at every pp.
// This is decided on the expressions themselves, not by sampling: the batch kernel is compiled from
// these outputs (compile.ts) and reads an input column only through the symbols they contain, so
// when no output contains `pp` the kernel's results do not depend on the PP column at all.
import { type AnalyzerContext, buildStageExpressions, expr, STRATEGY_SYMBOLS } from '@mist/analyzer';

type Expr = expr.Expr;

/** True when some output of the stage model (time, memory or fit) depends on pp. */
export function stageModelReadsPp(ctx: AnalyzerContext): boolean {
  const pp = STRATEGY_SYMBOLS.pp;
  if (pp.k !== 'sym') throw new Error('analyzer STRATEGY_SYMBOLS.pp is not a symbol (internal error)');
  const built = buildStageExpressions(ctx);
  return Object.values(built.outputs).some((e) => mentions(e, pp.name, new Set<Expr>()));
}

/** Whether `e` contains the symbol `name`; each shared sub-expression (ref) is visited once. */
function mentions(e: Expr, name: string, seen: Set<Expr>): boolean {
  switch (e.k) {
    case 'num':
      return false;
    case 'sym':
      return e.name === name;
    case 'add':
      return e.terms.some((t) => mentions(t, name, seen));
    case 'mul':
      return e.factors.some((t) => mentions(t, name, seen));
    case 'pow':
      return mentions(e.base, name, seen);
    case 'max':
    case 'min':
      return e.args.some((t) => mentions(t, name, seen));
    case 'step':
      return mentions(e.arg, name, seen);
    case 'ref':
      if (seen.has(e)) return false;
      seen.add(e);
      return mentions(e.body, name, seen);
  }
}
