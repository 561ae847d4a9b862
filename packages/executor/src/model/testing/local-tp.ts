// Test helper: an in-process tensor-parallel group. Each rank's hooks sum its buffer with the other
// ranks' buffers of the same call (calls are matched by their order), in rank order, and every
// rank gets the same sum (or max).
import { siteOp, type TpHooks, type TpSite } from '../tp-hooks';

export class LocalTpGroup {
  private readonly calls: Array<{ bufs: Float32Array[]; sites: TpSite[]; arrived: number; done: Array<() => void> }> = [];
  private readonly next: number[];
  readonly log: TpSite[] = [];

  constructor(readonly size: number) {
    this.next = new Array<number>(size).fill(0);
  }

  hooks(rank: number): TpHooks {
    return {
      allReduce: (buffer: Float32Array, site: TpSite): Promise<void> => {
        const i = this.next[rank]++;
        if (!this.calls[i]) this.calls[i] = { bufs: [], sites: [], arrived: 0, done: [] };
        const c = this.calls[i];
        c.bufs[rank] = buffer;
        c.sites[rank] = site;
        c.arrived++;
        return new Promise<void>((resolve) => {
          c.done.push(resolve);
          if (c.arrived < this.size) return;
          if (c.sites.some((s) => s.point !== site.point || s.layer !== site.layer)) throw new Error('ranks reached different all-reduce sites');
          this.log.push(site);
          const max = siteOp(site) === 'max';
          const sum = new Float32Array(buffer.length).fill(max ? -Infinity : 0);
          for (const b of c.bufs) for (let j = 0; j < sum.length; j++) sum[j] = max ? Math.max(sum[j], b[j]) : sum[j] + b[j];
          for (const b of c.bufs) b.set(sum);
          for (const d of c.done) d();
        });
      },
    };
  }
}
