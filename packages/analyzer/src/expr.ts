// A small symbolic expression builder: enough algebra to write the cost model as formulas of
// b, s, h, heads, ... , simplify them once (constant folding, expansion, collecting like terms) and
// print them readably. Compilation to JavaScript lives in expr-compile.ts.
//
// Non-polynomial functions (max, min, step) are kept as opaque "atoms" whose arguments are
// simplified recursively; negative powers of sums are atoms too. Exponents are integers.

export type Expr =
  | { readonly k: 'num'; readonly v: number }
  | { readonly k: 'sym'; readonly name: string }
  | { readonly k: 'add'; readonly terms: readonly Expr[] }
  | { readonly k: 'mul'; readonly factors: readonly Expr[] }
  | { readonly k: 'pow'; readonly base: Expr; readonly exp: number }
  | { readonly k: 'max'; readonly args: readonly Expr[] }
  | { readonly k: 'min'; readonly args: readonly Expr[] }
  /** 1 when the argument is > 0, else 0. */
  | { readonly k: 'step'; readonly arg: Expr }
  /** A named intermediate quantity: simplified and computed once, printed by name. */
  | { readonly k: 'ref'; readonly name: string; readonly body: Expr };

export type Operand = Expr | number;

const ZERO: Expr = { k: 'num', v: 0 };
const ONE: Expr = { k: 'num', v: 1 };

export function num(v: number): Expr {
  if (!Number.isFinite(v)) throw new Error(`expression constant must be finite, got ${v}`);
  return v === 0 ? ZERO : v === 1 ? ONE : { k: 'num', v };
}

export function sym(name: string): Expr {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`invalid symbol name "${name}"`);
  return { k: 'sym', name };
}

function lift(x: Operand): Expr {
  return typeof x === 'number' ? num(x) : x;
}

export function add(...xs: Operand[]): Expr {
  const terms = xs.map(lift).filter((t) => !(t.k === 'num' && t.v === 0));
  if (terms.length === 0) return ZERO;
  if (terms.length === 1) return terms[0];
  return { k: 'add', terms };
}

export function mul(...xs: Operand[]): Expr {
  const factors = xs.map(lift);
  if (factors.some((f) => f.k === 'num' && f.v === 0)) return ZERO;
  const rest = factors.filter((f) => !(f.k === 'num' && f.v === 1));
  if (rest.length === 0) return ONE;
  if (rest.length === 1) return rest[0];
  return { k: 'mul', factors: rest };
}

export function pow(base: Operand, exp: number): Expr {
  if (!Number.isInteger(exp)) throw new Error(`only integer exponents are supported, got ${exp}`);
  if (exp === 0) return ONE;
  if (exp === 1) return lift(base);
  return { k: 'pow', base: lift(base), exp };
}

export function neg(x: Operand): Expr {
  return mul(-1, x);
}

export function sub(a: Operand, b: Operand): Expr {
  return add(a, neg(b));
}

export function div(a: Operand, b: Operand): Expr {
  const bb = lift(b);
  if (bb.k === 'num') {
    if (bb.v === 0) throw new Error('division by the constant 0');
    return mul(a, 1 / bb.v);
  }
  return mul(a, pow(bb, -1));
}

export function max(...xs: Operand[]): Expr {
  if (xs.length === 0) throw new Error('max() needs at least one argument');
  return xs.length === 1 ? lift(xs[0]) : { k: 'max', args: xs.map(lift) };
}

export function min(...xs: Operand[]): Expr {
  if (xs.length === 0) throw new Error('min() needs at least one argument');
  return xs.length === 1 ? lift(xs[0]) : { k: 'min', args: xs.map(lift) };
}

export function step(x: Operand): Expr {
  return { k: 'step', arg: lift(x) };
}

/**
 * Names an intermediate quantity. It stays one atom in the expressions that use it (computed once
 * per candidate in compiled code, shown by name in formulas); names must be unique per model.
 */
export function named(name: string, body: Operand): Expr {
  if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) throw new Error(`invalid name "${name}"`);
  return { k: 'ref', name, body: lift(body) };
}

/** `flag ? a : b` for a 0/1 flag, written as the polynomial `b + flag*(a - b)`. */
export function choose(flag: Operand, a: Operand, b: Operand): Expr {
  return add(b, mul(flag, sub(a, b)));
}

/** Sum of a list (empty: 0). */
export function sum(xs: readonly Operand[]): Expr {
  return add(...xs);
}

// ---------------------------------------------------------------------------------------------
// Normal form: a polynomial over atoms. An atom is a symbol, a function node (max/min/step) with
// simplified arguments, or a sum raised to a negative power.

/** factor key -> integer exponent (never 0). */
type Factors = Map<string, number>;
interface Mono {
  coef: number;
  factors: Factors;
}
/** monomial key -> monomial. */
export type Poly = Map<string, Mono>;

/** Registry of the atoms met while simplifying: key -> the atom's expression (for symbols, the symbol). */
export class AtomTable {
  readonly atoms = new Map<string, Expr>();
  /** Atom keys in the order they were first registered (arguments before the atoms using them). */
  readonly order: string[] = [];
  /** Normal forms of named quantities (by name). */
  readonly refs = new Map<string, Poly>();

  intern(key: string, e: Expr): string {
    if (!this.atoms.has(key)) {
      this.atoms.set(key, e);
      this.order.push(key);
    }
    return key;
  }
}

function monoKey(f: Factors): string {
  return [...f.entries()]
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    .map(([k, e]) => (e === 1 ? k : `${k}^${e}`))
    .join('*');
}

function constPoly(v: number): Poly {
  const p: Poly = new Map();
  if (v !== 0) p.set('', { coef: v, factors: new Map() });
  return p;
}

function atomPoly(key: string, exp = 1): Poly {
  const f: Factors = new Map([[key, exp]]);
  return new Map([[monoKey(f), { coef: 1, factors: f }]]);
}

function addInto(acc: Poly, m: Mono): void {
  const key = monoKey(m.factors);
  const cur = acc.get(key);
  if (cur) {
    const c = cur.coef + m.coef;
    if (c === 0) acc.delete(key);
    else acc.set(key, { coef: c, factors: cur.factors });
  } else if (m.coef !== 0) {
    acc.set(key, { coef: m.coef, factors: new Map(m.factors) });
  }
}

function polyAdd(a: Poly, b: Poly): Poly {
  const out: Poly = new Map(a);
  for (const m of b.values()) addInto(out, m);
  return out;
}

function monoMul(x: Mono, y: Mono): Mono {
  const f: Factors = new Map(x.factors);
  for (const [k, e] of y.factors) {
    const n = (f.get(k) ?? 0) + e;
    if (n === 0) f.delete(k);
    else f.set(k, n);
  }
  return { coef: x.coef * y.coef, factors: f };
}

function polyMul(a: Poly, b: Poly): Poly {
  const out: Poly = new Map();
  for (const x of a.values()) for (const y of b.values()) addInto(out, monoMul(x, y));
  return out;
}

function polyConst(p: Poly): number | undefined {
  if (p.size === 0) return 0;
  if (p.size === 1) {
    const m = p.get('');
    if (m) return m.coef;
  }
  return undefined;
}

/** Simplifies `e` into its polynomial normal form, registering the atoms it uses in `atoms`. */
export function normalize(e: Expr, atoms: AtomTable): Poly {
  switch (e.k) {
    case 'num':
      return constPoly(e.v);
    case 'sym':
      return atomPoly(atoms.intern(e.name, e));
    case 'add':
      return e.terms.reduce<Poly>((acc, t) => polyAdd(acc, normalize(t, atoms)), new Map());
    case 'mul': {
      let acc = constPoly(1);
      for (const f of e.factors) {
        acc = polyMul(acc, normalize(f, atoms));
        if (acc.size === 0) return acc;
      }
      return acc;
    }
    case 'pow': {
      const p = normalize(e.base, atoms);
      if (p.size === 1) {
        const m = [...p.values()][0];
        if (m.coef === 0) throw new Error('0 raised to a power');
        const f: Factors = new Map();
        for (const [k, x] of m.factors) f.set(k, x * e.exp);
        const mono: Mono = { coef: m.coef ** e.exp, factors: f };
        return new Map([[monoKey(f), mono]]);
      }
      if (p.size === 0) {
        if (e.exp < 0) throw new Error('division by an expression that simplifies to 0');
        return new Map();
      }
      if (e.exp > 0) {
        let acc = constPoly(1);
        for (let i = 0; i < e.exp; i++) acc = polyMul(acc, p);
        return acc;
      }
      const base = toExpr(p, atoms);
      const key = atoms.intern(`(${formatPoly(p, atoms)})`, base);
      return atomPoly(key, e.exp);
    }
    case 'max':
    case 'min': {
      const pick = e.k === 'max' ? Math.max : Math.min;
      const polys = e.args.map((a) => normalize(a, atoms));
      let folded: number | undefined;
      const rest = new Map<string, Poly>();
      for (const p of polys) {
        const c = polyConst(p);
        if (c !== undefined) folded = folded === undefined ? c : pick(folded, c);
        else rest.set(formatPoly(p, atoms), p);
      }
      if (rest.size === 0) return constPoly(folded ?? 0);
      // max(x, c) = x when x >= 0 >= c (every symbol stands for a quantity >= 0).
      if (e.k === 'max' && folded !== undefined && folded <= 0 && [...rest.values()].some((p) => nonNegative(p, atoms))) {
        folded = undefined;
      }
      let args = [...rest.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([, p]) => p);
      if (folded !== undefined) args.push(constPoly(folded));
      // Drop an argument another one dominates term by term (their difference is certainly >= 0).
      const negate = (p: Poly): Poly => polyMul(p, constPoly(-1));
      args = args.filter((p, i) => !args.some((q, j) => j !== i &&
        nonNegative(e.k === 'max' ? polyAdd(q, negate(p)) : polyAdd(p, negate(q)), atoms) &&
        (j < i || !nonNegative(e.k === 'max' ? polyAdd(p, negate(q)) : polyAdd(q, negate(p)), atoms))));
      if (args.length === 1) return args[0];
      const expr: Expr = { k: e.k, args: args.map((p) => toExpr(p, atoms)) };
      const key = `${e.k}(${args.map((p) => formatPoly(p, atoms)).join(', ')})`;
      return atomPoly(atoms.intern(key, expr));
    }
    case 'step': {
      const p = normalize(e.arg, atoms);
      const c = polyConst(p);
      if (c !== undefined) return constPoly(c > 0 ? 1 : 0);
      const key = `step(${formatPoly(p, atoms)})`;
      return atomPoly(atoms.intern(key, { k: 'step', arg: toExpr(p, atoms) }));
    }
    case 'ref': {
      let p = atoms.refs.get(e.name);
      if (!p) {
        p = normalize(e.body, atoms);
        atoms.refs.set(e.name, p);
      }
      const c = polyConst(p);
      if (c !== undefined) return constPoly(c);
      // A named quantity that is just one atom (e.g. a symbol) is that atom.
      if (p.size === 1) {
        const m = [...p.values()][0];
        if (m.coef === 1 && m.factors.size === 1 && [...m.factors.values()][0] === 1) return p;
      }
      return atomPoly(atoms.intern(e.name, e));
    }
  }
}

/**
 * True when a normal form is certainly >= 0, assuming every symbol is >= 0 (all the cost model's
 * symbols are sizes, counts, ratios or flags): positive coefficients over non-negative atoms.
 */
export function nonNegative(p: Poly, atoms: AtomTable): boolean {
  for (const m of p.values()) {
    if (m.coef < 0) return false;
    for (const key of m.factors.keys()) {
      const a = atoms.atoms.get(key);
      if (!a) return false;
      if (a.k === 'sym' || a.k === 'step') continue;
      if (a.k === 'ref') {
        const body = atoms.refs.get(a.name);
        if (!body || !nonNegative(body, atoms)) return false;
      } else if (a.k === 'max') {
        if (!a.args.some((x) => nonNegative(normalize(x, atoms), atoms))) return false;
      } else if (a.k === 'min') {
        if (!a.args.every((x) => nonNegative(normalize(x, atoms), atoms))) return false;
      } else {
        // a sum to a negative power
        if (!nonNegative(normalize(a, atoms), atoms)) return false;
      }
    }
  }
  return true;
}

/** Turns a normal form back into an expression tree (atoms referenced by their expression). */
export function toExpr(p: Poly, atoms: AtomTable): Expr {
  const terms: Expr[] = [];
  for (const m of p.values()) {
    const fs: Expr[] = [num(m.coef)];
    for (const [k, e] of m.factors) {
      const atom = atoms.atoms.get(k);
      if (!atom) throw new Error(`unknown atom ${k}`);
      fs.push(pow(atom, e));
    }
    terms.push(mul(...fs));
  }
  return add(...terms);
}

/** Formats a number briefly: integers exactly, others with 6 significant digits. */
export function formatNumber(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const t = v.toPrecision(6);
  return t.includes('e') ? t.replace(/\.?0+e/, 'e') : t.replace(/\.?0+$/, '');
}

function formatMono(m: Mono): string {
  const num: string[] = [];
  const den: string[] = [];
  const sorted = [...m.factors.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1));
  for (const [k, e] of sorted) {
    const part = Math.abs(e) === 1 ? k : `${k}^${Math.abs(e)}`;
    (e > 0 ? num : den).push(part);
  }
  let coef = m.coef;
  let sign = '';
  if (coef < 0) {
    sign = '-';
    coef = -coef;
  }
  const parts = coef !== 1 || num.length === 0 ? [formatNumber(coef), ...num] : num;
  let text = parts.join('*');
  if (den.length > 0) text += den.length === 1 ? `/${den[0]}` : `/(${den.join('*')})`;
  return sign + text;
}

/** Degree used to order terms: higher total positive degree first, constants last. */
function monoDegree(m: Mono): number {
  let d = 0;
  for (const e of m.factors.values()) d += e;
  return d;
}

export function formatPoly(p: Poly, atoms: AtomTable): string {
  if (p.size === 0) return '0';
  const monos = [...p.values()].sort((x, y) => {
    const dx = monoDegree(x);
    const dy = monoDegree(y);
    if (dx !== dy) return dy - dx;
    const kx = monoKey(x.factors);
    const ky = monoKey(y.factors);
    return kx < ky ? -1 : kx > ky ? 1 : 0;
  });
  let out = '';
  for (const m of monos) {
    const t = formatMono(m);
    if (out === '') out = t;
    else out += t.startsWith('-') ? ` - ${t.slice(1)}` : ` + ${t}`;
  }
  return out;
}

/** Simplified, readable text of an expression. */
export function format(e: Expr): string {
  const atoms = new AtomTable();
  return formatPoly(normalize(e, atoms), atoms);
}

/**
 * Simplified text of labelled expressions followed by the definitions of the named quantities they
 * use (top-down, each once), e.g. `steady = fwdPhase + bwdPhase + ...` then `  fwdPhase = max(...)`.
 */
export function formatWithDefinitions(items: readonly { label: string; expr: Expr }[]): string {
  const atoms = new AtomTable();
  const polys = items.map((i) => normalize(i.expr, atoms));
  const lines = items.map((i, j) => `${i.label} = ${formatPoly(polys[j], atoms)}`);
  const seen = new Set<string>();
  const defs: string[] = [];
  const visitExpr = (e: Expr): void => visitPoly(normalize(e, atoms));
  function visitPoly(p: Poly): void {
    for (const m of p.values()) {
      for (const key of m.factors.keys()) {
        const atom = atoms.atoms.get(key);
        if (!atom || seen.has(key)) continue;
        seen.add(key);
        if (atom.k === 'ref') {
          const body = atoms.refs.get(atom.name) ?? normalize(atom.body, atoms);
          defs.push(`  ${atom.name} = ${formatPoly(body, atoms)}`);
          visitPoly(body);
        } else if (atom.k === 'max' || atom.k === 'min') atom.args.forEach(visitExpr);
        else if (atom.k === 'step') visitExpr(atom.arg);
        else if (atom.k !== 'sym') visitExpr(atom);
      }
    }
  }
  polys.forEach(visitPoly);
  return defs.length > 0 ? `${lines.join('\n')}\nwhere\n${defs.join('\n')}` : lines.join('\n');
}

/** Simplified expression (normal form as a tree). */
export function simplify(e: Expr): Expr {
  const atoms = new AtomTable();
  return toExpr(normalize(e, atoms), atoms);
}

/** Replaces symbols by numbers or expressions (no simplification; call simplify/format after). */
export function substitute(
  e: Expr, bindings: Readonly<Record<string, Operand | undefined>>, memo: Map<string, Expr> = new Map(),
): Expr {
  const sub = (x: Expr): Expr => substitute(x, bindings, memo);
  switch (e.k) {
    case 'num':
      return e;
    case 'sym': {
      const b = bindings[e.name];
      return b === undefined ? e : lift(b);
    }
    case 'add':
      return { k: 'add', terms: e.terms.map((t) => sub(t)) };
    case 'mul':
      return { k: 'mul', factors: e.factors.map((t) => sub(t)) };
    case 'pow':
      return { k: 'pow', base: sub(e.base), exp: e.exp };
    case 'max':
    case 'min':
      return { k: e.k, args: e.args.map((t) => sub(t)) };
    case 'step':
      return { k: 'step', arg: sub(e.arg) };
    case 'ref': {
      let r = memo.get(e.name);
      if (!r) {
        r = { k: 'ref', name: e.name, body: sub(e.body) };
        memo.set(e.name, r);
      }
      return r;
    }
  }
}

/** Evaluates an expression tree directly (slow; for tests and one-off values). */
export function evaluate(e: Expr, env: Readonly<Record<string, number>>): number {
  switch (e.k) {
    case 'num':
      return e.v;
    case 'sym': {
      const v = env[e.name];
      if (v === undefined) throw new Error(`no value for symbol ${e.name}`);
      return v;
    }
    case 'add':
      return e.terms.reduce((s, t) => s + evaluate(t, env), 0);
    case 'mul':
      return e.factors.reduce((s, t) => s * evaluate(t, env), 1);
    case 'pow':
      return evaluate(e.base, env) ** e.exp;
    case 'max':
      return Math.max(...e.args.map((t) => evaluate(t, env)));
    case 'min':
      return Math.min(...e.args.map((t) => evaluate(t, env)));
    case 'step':
      return evaluate(e.arg, env) > 0 ? 1 : 0;
    case 'ref':
      return evaluate(e.body, env);
  }
}

/** The symbols an expression still depends on. */
export function freeSymbols(e: Expr, out = new Set<string>()): Set<string> {
  switch (e.k) {
    case 'num':
      break;
    case 'sym':
      out.add(e.name);
      break;
    case 'add':
      e.terms.forEach((t) => freeSymbols(t, out));
      break;
    case 'mul':
      e.factors.forEach((t) => freeSymbols(t, out));
      break;
    case 'pow':
      freeSymbols(e.base, out);
      break;
    case 'max':
    case 'min':
      e.args.forEach((t) => freeSymbols(t, out));
      break;
    case 'step':
      freeSymbols(e.arg, out);
      break;
    case 'ref':
      freeSymbols(e.body, out);
      break;
  }
  return out;
}
