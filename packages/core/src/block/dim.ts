// Symbolic sizes of a block's tensors as plain data: the analyzer turns them into its expressions,
// the executor evaluates them to numbers. Symbols (per micro-batch, per tensor-parallel rank):
//   b micro-batch size, s sequence length, h hidden, a attention heads, k key/value heads,
//   f MLP hidden width, V vocabulary, t tensor-parallel degree, sp 1 with sequence parallelism
//   (else 0), fa 1 with flash attention (else 0).

export type DimSymbol = 'b' | 's' | 'h' | 'a' | 'k' | 'f' | 'V' | 't' | 'sp' | 'fa';

export type Dim =
  | number
  | { readonly sym: DimSymbol }
  | { readonly op: 'add' | 'mul' | 'max'; readonly args: readonly Dim[] }
  | { readonly op: 'div' | 'sub'; readonly args: readonly [Dim, Dim] }
  /** `then` when flag is 1, `else` when 0 (flag is a 0/1 size such as sp). */
  | { readonly op: 'choose'; readonly flag: Dim; readonly then: Dim; readonly else: Dim }
  /** A named intermediate size (computed once where the reader supports it). */
  | { readonly op: 'named'; readonly name: string; readonly body: Dim };

export type DimEnv = Readonly<Record<DimSymbol, number>>;

export const dsym = (name: DimSymbol): Dim => ({ sym: name });
export const dadd = (...args: Dim[]): Dim => ({ op: 'add', args });
export const dmul = (...args: Dim[]): Dim => ({ op: 'mul', args });
export const dmax = (...args: Dim[]): Dim => ({ op: 'max', args });
export const ddiv = (x: Dim, y: Dim): Dim => ({ op: 'div', args: [x, y] });
export const dsub = (x: Dim, y: Dim): Dim => ({ op: 'sub', args: [x, y] });
export const dchoose = (flag: Dim, then: Dim, otherwise: Dim): Dim => ({ op: 'choose', flag, then, else: otherwise });
export const dnamed = (name: string, body: Dim): Dim => ({ op: 'named', name, body });

/** The value of a size under numbers for every symbol. */
export function evalDim(d: Dim, env: DimEnv): number {
  if (typeof d === 'number') return d;
  if ('sym' in d) {
    const v = env[d.sym];
    if (!Number.isFinite(v)) throw new Error(`size symbol ${d.sym} has no finite value (got ${v})`);
    return v;
  }
  switch (d.op) {
    case 'add': return d.args.reduce<number>((acc, x) => acc + evalDim(x, env), 0);
    case 'mul': return d.args.reduce<number>((acc, x) => acc * evalDim(x, env), 1);
    case 'max': return Math.max(...d.args.map((x) => evalDim(x, env)));
    case 'div': return evalDim(d.args[0], env) / evalDim(d.args[1], env);
    case 'sub': return evalDim(d.args[0], env) - evalDim(d.args[1], env);
    case 'choose': return evalDim(d.flag, env) ? evalDim(d.then, env) : evalDim(d.else, env);
    case 'named': return evalDim(d.body, env);
  }
}
