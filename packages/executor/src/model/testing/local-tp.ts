// Test helper: an in-process tensor-parallel group. Calls are matched by their order on each rank;
// once every rank has arrived, an all-reduce gives each the sum (or max) in rank order, an
// all-gather the ranks' shards concatenated in rank order, a reduce-scatter each rank its part of
// the sum.
import { siteOp, type TpHooks, type TpSite } from '../tp-hooks';

interface Call {
  kind: string;
  ins: Float32Array[];
  outs: Float32Array[];
  sites: TpSite[];
  arrived: number;
  done: Array<() => void>;
}

export class LocalTpGroup {
  private readonly calls: Call[] = [];
  private readonly next: number[];
  readonly log: TpSite[] = [];
  /** The collective of each logged site. */
  readonly kinds: string[] = [];

  constructor(readonly size: number) {
    this.next = new Array<number>(size).fill(0);
  }

  private meet(rank: number, kind: string, input: Float32Array, output: Float32Array, site: TpSite, finish: (c: Call) => void): Promise<void> {
    const i = this.next[rank]++;
    if (!this.calls[i]) this.calls[i] = { kind, ins: [], outs: [], sites: [], arrived: 0, done: [] };
    const c = this.calls[i];
    c.ins[rank] = input;
    c.outs[rank] = output;
    c.sites[rank] = site;
    c.arrived++;
    return new Promise<void>((resolve) => {
      c.done.push(resolve);
      if (c.arrived < this.size) return;
      if (c.sites.some((s) => s.point !== site.point || s.layer !== site.layer) || c.kind !== kind) throw new Error('ranks reached different collective sites');
      this.log.push(site);
      this.kinds.push(kind);
      finish(c);
      for (const d of c.done) d();
    });
  }

  hooks(rank: number): TpHooks {
    return {
      allReduce: (buffer, site) => this.meet(rank, 'allReduce', buffer, buffer, site, (c) => {
        const max = siteOp(site) === 'max';
        const sum = new Float32Array(buffer.length).fill(max ? -Infinity : 0);
        for (const b of c.ins) for (let j = 0; j < sum.length; j++) sum[j] = max ? Math.max(sum[j], b[j]) : sum[j] + b[j];
        for (const b of c.outs) b.set(sum);
      }),
      allGather: (shard, full, site) => this.meet(rank, 'allGather', shard, full, site, (c) => {
        for (const out of c.outs) c.ins.forEach((s, r) => out.set(s, r * s.length));
      }),
      reduceScatter: (full, shard, site) => this.meet(rank, 'reduceScatter', full, shard, site, (c) => {
        const sum = new Float32Array(full.length);
        for (const b of c.ins) for (let j = 0; j < sum.length; j++) sum[j] += b[j];
        c.outs.forEach((out, r) => out.set(sum.subarray(r * out.length, (r + 1) * out.length)));
      }),
    };
  }
}
