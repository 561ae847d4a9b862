// mergeProfiles(): per-host profiles (one per agent, all of one machine kind) into one cluster
// profile. Rules:
//   - rates, latencies, bandwidths, slowdowns and every fit coefficient: the median over the hosts
//     (a slow or noisy host does not move it much);
//   - capacities (device memory, host memory, devices per node): the minimum over the hosts, so a
//     plan that fits the merged profile fits every host; memory reserves: the maximum;
//   - raw tables: per point (same shape / size / collective), the median over the hosts that have it;
//   - cluster: `nodes` = number of hosts. Links between hosts are not measured by per-host profiles:
//     `interNode` stays as the hosts give it and is listed in `unmeasured`;
//   - the executor backend's section: merge-backend.ts.
import { type AlphaBeta, type FitReport, type HardwareProfile, parseHardwareProfile } from '@mist/core';
import { mergeBackendSections } from './merge-backend';
import { median } from './timing';

const med = (xs: number[]): number => median(xs);

function medianAlphaBeta(xs: AlphaBeta[]): AlphaBeta {
  return { alpha: med(xs.map((x) => x.alpha)), beta: med(xs.map((x) => x.beta)) };
}

/** Median per key of a table's points over the hosts. */
function mergeTable<T extends { seconds: number }>(tables: (T[] | undefined)[], key: (p: T) => string): T[] | undefined {
  const present = tables.filter((t): t is T[] => t !== undefined);
  if (present.length === 0) return undefined;
  const groups = new Map<string, T[]>();
  for (const t of present) for (const p of t) groups.set(key(p), [...(groups.get(key(p)) ?? []), p]);
  return [...groups.values()].map((ps) => ({ ...ps[0], seconds: med(ps.map((p) => p.seconds)) }));
}

function mergeFits(all: (Record<string, FitReport> | undefined)[]): Record<string, FitReport> | undefined {
  const present = all.filter((f): f is Record<string, FitReport> => f !== undefined);
  if (present.length === 0) return undefined;
  const names = new Set(present.flatMap((f) => Object.keys(f)));
  const out: Record<string, FitReport> = {};
  for (const name of names) {
    const fs = present.map((f) => f[name]).filter((f): f is FitReport => f !== undefined);
    out[name] = {
      model: fs[0].model, c0: med(fs.map((f) => f.c0)), c1: med(fs.map((f) => f.c1)),
      points: Math.min(...fs.map((f) => f.points)),
      // The largest error any host reported: the merged fit is not re-evaluated on every host's points.
      maxRelError: Math.max(...fs.map((f) => f.maxRelError)), medianRelError: med(fs.map((f) => f.medianRelError)),
    };
  }
  return out;
}

export function mergeProfiles(profiles: readonly HardwareProfile[]): HardwareProfile {
  if (profiles.length === 0) throw new RangeError('mergeProfiles: no profiles');
  const kinds = [...new Set(profiles.map((p) => p.machineKind ?? '(unknown)'))];
  if (kinds.length > 1) {
    throw new Error(`mergeProfiles: hosts of different kinds (${kinds.join(', ')}) cannot share one cluster profile`);
  }
  const first = profiles[0];
  const c = profiles.map((p) => p.compute);
  const g = profiles.map((p) => p.cluster.gpu);
  const cl = profiles.map((p) => p.cluster);
  const collectives = first.collectives && profiles.every((p) => p.collectives)
    ? Object.fromEntries(Object.keys(first.collectives).map((kind) => {
      const perHost = profiles.map((p) => (p.collectives as Record<string, Record<string, AlphaBeta>>)[kind]);
      return [kind, Object.fromEntries(Object.keys(perHost[0]).map((cls) => [cls, medianAlphaBeta(perHost.map((h) => h[cls]))]))];
    }))
    : undefined;
  const hostNames = profiles.map((p, i) => String(p.host?.hostname ?? `host${i}`));
  const backend = mergeBackendSections(profiles.map((p) => p.backend));
  const merged = {
    version: 1,
    source: 'measured',
    createdAt: new Date().toISOString(),
    machineKind: first.machineKind,
    host: { hosts: profiles.length, hostnames: hostNames.join(', '), merged: 'mergeProfiles: medians of fits, minimum of capacities' },
    cluster: {
      name: `${profiles.length}x${Math.min(...cl.map((x) => x.gpusPerNode))}-${first.cluster.gpu.name}`,
      nodes: profiles.length,
      gpusPerNode: Math.min(...cl.map((x) => x.gpusPerNode)),
      gpu: {
        name: first.cluster.gpu.name,
        memoryBytes: Math.min(...g.map((x) => x.memoryBytes)),
        peakFlops: {
          fp16: med(g.map((x) => x.peakFlops.fp16)), bf16: med(g.map((x) => x.peakFlops.bf16)), fp32: med(g.map((x) => x.peakFlops.fp32)),
        },
        memoryBandwidth: med(g.map((x) => x.memoryBandwidth)),
        nvlinkBandwidth: g.every((x) => x.nvlinkBandwidth !== null) ? med(g.map((x) => x.nvlinkBandwidth as number)) : null,
        pcieGen: Math.min(...g.map((x) => x.pcieGen)),
        pcieBandwidth: med(g.map((x) => x.pcieBandwidth)),
      },
      intraNode: { bandwidth: med(cl.map((x) => x.intraNode.bandwidth)), latency: med(cl.map((x) => x.intraNode.latency)) },
      interNode: { bandwidth: med(cl.map((x) => x.interNode.bandwidth)), latency: med(cl.map((x) => x.interNode.latency)) },
      hostMemoryPerNode: Math.min(...cl.map((x) => x.hostMemoryPerNode)),
    },
    compute: {
      peakFlops: med(c.map((x) => x.peakFlops)),
      matmulEfficiency: med(c.map((x) => x.matmulEfficiency)),
      matmulHalfEfficiencyFlops: med(c.map((x) => x.matmulHalfEfficiencyFlops)),
      attentionEfficiency: med(c.map((x) => x.attentionEfficiency)),
      memoryBandwidth: med(c.map((x) => x.memoryBandwidth)),
      memoryEfficiency: med(c.map((x) => x.memoryEfficiency)),
      kernelLaunch: med(c.map((x) => x.kernelLaunch)),
    },
    matmulTable: mergeTable(profiles.map((p) => p.matmulTable), (p) => `${p.m}x${p.n}x${p.k}`),
    opTable: mergeTable(profiles.map((p) => p.opTable), (p) => `${p.op}:${p.elements}`),
    links: {
      intraNode: medianAlphaBeta(profiles.map((p) => p.links.intraNode)),
      interNode: medianAlphaBeta(profiles.map((p) => p.links.interNode)),
      hostToDevice: medianAlphaBeta(profiles.map((p) => p.links.hostToDevice)),
    },
    collectives,
    collectiveTable: mergeTable(profiles.map((p) => p.collectiveTable), (p) => `${p.collective}:${p.linkClass}:${p.ranks}:${p.bytes}`),
    copyTable: mergeTable(profiles.map((p) => p.copyTable), (p) => String(p.bytes)),
    overlap: {
      commSlowdown: med(profiles.map((p) => p.overlap.commSlowdown)),
      offloadSlowdown: med(profiles.map((p) => p.overlap.offloadSlowdown)),
    },
    fits: mergeFits(profiles.map((p) => p.fits)),
    ...(backend.backend ? { backend: backend.backend } : {}),
    unmeasured: {
      ...Object.assign({}, ...profiles.map((p) => p.unmeasured ?? {})),
      ...(backend.unmeasured ? { backend: backend.unmeasured } : {}),
      'links.interNode': 'per-host profiles do not measure the links between hosts; the hosts\' values are kept',
    },
    memory: {
      cudaContextBytes: Math.max(...profiles.map((p) => p.memory.cudaContextBytes)),
      ncclBufferBytes: Math.max(...profiles.map((p) => p.memory.ncclBufferBytes)),
      fragmentation: Math.max(...profiles.map((p) => p.memory.fragmentation)),
    },
  };
  return parseHardwareProfile(merged);
}
