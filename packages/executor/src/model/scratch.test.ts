import { describe, expect, it } from 'vitest';
import { arraysOf, Scratch } from './scratch';

describe('Scratch', () => {
  it('hands back a given-back buffer of the same length, zeroed', () => {
    const s = new Scratch();
    const a = s.take(8);
    a.fill(3);
    s.give([a]);
    const b = s.take(8);
    expect(b).toBe(a);
    expect([...b]).toEqual(new Array(8).fill(0));
    expect(s.take(8)).not.toBe(a);
  });

  it('never hands out one buffer twice, even when given back twice', () => {
    const s = new Scratch();
    const a = new Float32Array(4);
    s.give([a, a]);
    s.give([a]);
    expect(s.freeCount).toBe(1);
    expect(s.take(4)).toBe(a);
    expect(s.take(4)).not.toBe(a);
  });

  it('ignores views into a larger buffer (they do not own their memory)', () => {
    const s = new Scratch();
    const whole = new Float32Array(16);
    s.give([whole.subarray(0, 8), whole.subarray(8)]);
    expect(s.freeCount).toBe(0);
  });

  it('arraysOf finds arrays directly, in arrays and one level into objects', () => {
    const a = new Float32Array(1), b = new Float32Array(2), c = new Float32Array(3);
    expect(arraysOf([a, [b], { mean: c, rstd: a, n: 4 }, null])).toEqual([a, b, c, a]);
  });
});
