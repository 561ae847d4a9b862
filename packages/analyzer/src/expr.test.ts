import { describe, expect, it } from 'vitest';
import { add, div, evaluate, format, formatWithDefinitions, max, min, mul, named, pow, step, sub, substitute, sym } from './expr';
import { compileBatchKernel } from './expr-compile';

const [b, s, h, t] = ['b', 's', 'h', 't'].map(sym);

describe('expression builder', () => {
  it('folds constants and collects like terms', () => {
    expect(format(add(mul(2, b, s), mul(3, s, b), 4, -4))).toBe('5*b*s');
    expect(format(mul(add(b, 1), add(b, -1)))).toBe('b^2 - 1');
    expect(format(sub(mul(b, div(24, t)), mul(div(b, t), 24)))).toBe('0');
  });

  it('cancels powers and prints divisions', () => {
    expect(format(mul(s, b, h, div(mul(5, sym('a'), s), mul(h, t))))).toBe('5*a*b*s^2/t');
    expect(format(mul(pow(t, 2), pow(t, -2), b))).toBe('b');
  });

  it('keeps max/min/step as atoms and folds them on constants', () => {
    expect(format(max(3, 7, 5))).toBe('7');
    expect(format(min(3, 7))).toBe('3');
    expect(format(step(sub(2, 3)))).toBe('0');
    expect(format(add(max(b, s), max(s, b)))).toBe('2*max(b, s)');
    // a term-wise dominated argument is dropped (every symbol is >= 0)
    expect(format(max(mul(2, b), b))).toBe('2*b');
    expect(format(max(b, 0))).toBe('b');
  });

  it('substitutes and evaluates', () => {
    const e = add(mul(b, s, h), max(div(16, t), 1));
    expect(evaluate(substitute(e, { b: 2, s: 3, h: 4 }), { t: 32 })).toBe(24 + 1);
    expect(format(substitute(e, { t: 4, b: 1 }))).toBe('h*s + 4');
  });

  it('shows named quantities by name with their definitions', () => {
    const tokens = named('tokens', mul(b, s));
    const text = formatWithDefinitions([{ label: 'bytes', expr: mul(2, tokens, h) }]);
    expect(text).toBe('bytes = 2*h*tokens\nwhere\n  tokens = b*s');
    // a named constant folds away
    expect(format(mul(named('two', add(1, 1)), b))).toBe('2*b');
  });

  it('compiles to a batch kernel that agrees with direct evaluation', () => {
    const tokens = named('tokens', mul(b, s));
    const outs = [
      add(mul(3, tokens, h), div(tokens, t)),
      max(mul(tokens, 2), mul(h, div(1, add(t, 1)))),
      mul(step(sub(b, 2)), h),
    ];
    const kernel = compileBatchKernel({
      inputs: [{ name: 'b', column: 0 }, { name: 's', column: 1 }, { name: 'h', column: 2 }, { name: 't', column: 3 }],
      derived: [], outputs: outs, inputWidth: 4, outputWidth: 3,
    });
    const rows = [[1, 8, 16, 2], [4, 2, 3, 1], [3, 1, 100, 4]];
    const input = new Float64Array(rows.flat());
    const output = new Float64Array(9);
    kernel(input, output, 3);
    rows.forEach(([bv, sv, hv, tv], i) => {
      outs.forEach((e, j) => expect(output[i * 3 + j]).toBeCloseTo(evaluate(e, { b: bv, s: sv, h: hv, t: tv }), 9));
    });
  });

  it('refuses to compile an unbound symbol', () => {
    expect(() => compileBatchKernel({ inputs: [], derived: [], outputs: [b], inputWidth: 1, outputWidth: 1 }))
      .toThrow(/symbol "b"/);
  });
});
