// Compiles simplified expressions into one plain JavaScript function (via `new Function`) that
// evaluates every output for a batch of candidates laid out in a Float64Array. The generated code
// is straight-line arithmetic: shared atoms (max/min/step), reciprocals and repeated monomials are
// computed once per candidate into locals; nothing is allocated and no tree is interpreted.
import { AtomTable, type Expr, normalize, type Poly } from './expr';

export interface BatchInput {
  /** Symbol name read from the candidate's row. */
  name: string;
  /** Column in the input row. */
  column: number;
}

export interface DerivedSymbol {
  /** Symbol name the expressions use. */
  name: string;
  /** JavaScript expression computing it from input symbols, written with `v_<input>` variables. */
  js: string;
}

export interface BatchKernelSpec {
  inputs: readonly BatchInput[];
  derived: readonly DerivedSymbol[];
  outputs: readonly Expr[];
  inputWidth: number;
  outputWidth: number;
}

export type BatchKernel = (input: Float64Array, output: Float64Array, count: number) => void;

function literal(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`cannot compile the non-finite constant ${v}`);
  const t = String(v);
  return v < 0 ? `(${t})` : t;
}

/** Generates the source of the batch kernel (exposed for inspection and tests). */
export function batchKernelSource(spec: BatchKernelSpec): string {
  const atoms = new AtomTable();
  const polys = spec.outputs.map((e) => normalize(e, atoms));
  const inputNames = new Set(spec.inputs.map((i) => i.name));
  const derivedNames = new Set(spec.derived.map((d) => d.name));

  const lines: string[] = [];
  const atomVar = new Map<string, string>(); // atom key -> JS variable holding its value
  const recipVar = new Map<string, string>(); // atom key -> JS variable holding 1/value
  const monoVar = new Map<string, string>(); // monomial key -> JS variable
  let temp = 0;

  // Count how often each non-constant monomial occurs, to hoist the repeated ones.
  const monoUses = new Map<string, number>();
  const countMonos = (p: Poly): void => {
    for (const [key, m] of p) if (m.factors.size > 1) monoUses.set(key, (monoUses.get(key) ?? 0) + 1);
  };
  polys.forEach(countMonos);

  const atomValue = (key: string): string => {
    const have = atomVar.get(key);
    if (have) return have;
    const atom = atoms.atoms.get(key);
    if (!atom) throw new Error(`internal: unknown atom ${key}`);
    let code: string;
    if (atom.k === 'sym') {
      if (!inputNames.has(atom.name) && !derivedNames.has(atom.name)) {
        throw new Error(`cannot compile: symbol "${atom.name}" is neither an input nor a derived value`);
      }
      atomVar.set(key, `v_${atom.name}`);
      return `v_${atom.name}`;
    } else if (atom.k === 'max' || atom.k === 'min') {
      const args = atom.args.map((a) => polyCode(normalize(a, atoms)));
      code = `Math.${atom.k}(${args.join(', ')})`;
    } else if (atom.k === 'step') {
      code = `(${polyCode(normalize(atom.arg, atoms))} > 0 ? 1 : 0)`;
    } else if (atom.k === 'ref') {
      code = polyCode(atoms.refs.get(atom.name) ?? normalize(atom.body, atoms));
    } else {
      // A sum used with a negative exponent.
      code = polyCode(normalize(atom, atoms));
    }
    const v = `t${temp++}`;
    lines.push(`const ${v} = ${code};`);
    atomVar.set(key, v);
    return v;
  };

  const recip = (key: string): string => {
    const have = recipVar.get(key);
    if (have) return have;
    const base = atomValue(key);
    const v = `r${temp++}`;
    lines.push(`const ${v} = 1 / ${base};`);
    recipVar.set(key, v);
    return v;
  };

  const factorsCode = (factors: Map<string, number>): string => {
    const parts: string[] = [];
    const sorted = [...factors.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1));
    for (const [k, e] of sorted) {
      const v = e > 0 ? atomValue(k) : recip(k);
      for (let i = 0; i < Math.abs(e); i++) parts.push(v);
    }
    return parts.join(' * ');
  };

  const monoCode = (key: string, factors: Map<string, number>): string => {
    if (factors.size > 1 && (monoUses.get(key) ?? 0) > 1) {
      const have = monoVar.get(key);
      if (have) return have;
      const code = factorsCode(factors);
      const v = `m${temp++}`;
      lines.push(`const ${v} = ${code};`);
      monoVar.set(key, v);
      return v;
    }
    return factorsCode(factors);
  };

  function polyCode(p: Poly): string {
    if (p.size === 0) return '0';
    const terms: string[] = [];
    for (const [key, m] of p) {
      if (m.factors.size === 0) {
        terms.push(literal(m.coef));
        continue;
      }
      const f = monoCode(key, m.factors);
      terms.push(m.coef === 1 ? f : `${literal(m.coef)} * ${f}`);
    }
    return terms.length === 1 ? terms[0] : `(${terms.join(' + ')})`;
  }

  const outLines = polys.map((p, j) => `output[r + ${j}] = ${polyCode(p)};`);
  const head = [
    ...spec.inputs.map((inp) => `const v_${inp.name} = input[o + ${inp.column}];`),
    ...spec.derived.map((d) => `const v_${d.name} = ${d.js};`),
  ];
  return [
    '"use strict";',
    'return function evaluateBatch(input, output, count) {',
    '  for (let i = 0; i < count; i++) {',
    `    const o = i * ${spec.inputWidth};`,
    `    const r = i * ${spec.outputWidth};`,
    ...head.map((l) => `    ${l}`),
    ...lines.map((l) => `    ${l}`),
    ...outLines.map((l) => `    ${l}`),
    '  }',
    '};',
  ].join('\n');
}

/** Compiles the outputs into a batch kernel. */
export function compileBatchKernel(spec: BatchKernelSpec, source = batchKernelSource(spec)): BatchKernel {
  if (spec.outputs.length > spec.outputWidth) throw new Error('more outputs than the output width');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- compiling our own generated arithmetic
  return new Function(source)() as BatchKernel;
}
