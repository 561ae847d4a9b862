// The kept measured GPU profiles: one per GPU and dtype, fp16 and bf16 standing in for each other,
// datasheet and CPU profiles refused.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinHardwareProfile, parseClusterShorthand, parseHardwareProfile, SpecError } from '@mist/core';
import { saveMeasuredProfile, storedProfile } from './profile-store';

const dir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mist-store-'));
const datasheet = builtinHardwareProfile(parseClusterShorthand('1x1-h200'), 'bf16');
const measured = (dtype: string) => parseHardwareProfile({ ...datasheet, source: 'measured', host: { dtype }, compute: { ...datasheet.compute, matmulEfficiency: 0.5 } });

describe('the profile store', () => {
  it('keeps a measured GPU profile per dtype and finds it, a 16-bit one for the other 16-bit dtype', () => {
    const d = dir();
    const file = saveMeasuredProfile(measured('bf16'), d);
    expect(path.basename(file)).toBe('h200.bf16.json');
    expect(storedProfile('h200', 'bf16', d)?.profile.compute.matmulEfficiency).toBe(0.5);
    expect(storedProfile('h200', 'fp16', d)?.file).toBe(file);
    expect(storedProfile('h200', 'fp32', d)).toBeNull();
    expect(storedProfile('h100-sxm', 'bf16', d)).toBeNull();
    // A later measurement replaces it; an exact dtype wins over the other 16-bit one.
    saveMeasuredProfile(measured('fp16'), d);
    expect(path.basename(storedProfile('h200', 'fp16', d)!.file)).toBe('h200.fp16.json');
    expect(fs.readdirSync(d).sort()).toEqual(['h200.bf16.json', 'h200.fp16.json']);
  });

  it('refuses a datasheet profile, a CPU profile and one that does not say its dtype', () => {
    const d = dir();
    expect(() => saveMeasuredProfile(datasheet, d)).toThrow(/its source is datasheet:h200, not a measurement/);
    expect(() => saveMeasuredProfile(parseHardwareProfile({ ...datasheet, source: 'measured' }), d)).toThrow(/does not say the dtype/);
    const cpu = parseHardwareProfile({ ...measured('fp32'), cluster: { ...datasheet.cluster, gpu: { ...datasheet.cluster.gpu, name: 'cpu' } } });
    expect(() => saveMeasuredProfile(cpu, d)).toThrow(SpecError);
    expect(fs.readdirSync(d)).toEqual([]);
  });

  it('names a kept file it cannot read, and how to get past it', () => {
    const d = dir();
    fs.writeFileSync(path.join(d, 'h200.bf16.json'), '{"version": 1}');
    expect(() => storedProfile('h200', 'bf16', d)).toThrow(/invalid kept hardware profile .*h200\.bf16\.json \(remove it, or pass --datasheet\)/);
  });
});
