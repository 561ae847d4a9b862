import { describe, expect, it } from 'vitest';
import { GB, GiB, parseBandwidth, parseBytes, parseDuration } from './index';

describe('quantities with units', () => {
  it('sizes: binary and decimal prefixes, plain bytes', () => {
    expect(parseBytes('1TiB')).toBe(1024 * GiB);
    expect(parseBytes('512 GiB')).toBe(512 * GiB);
    expect(parseBytes('768GB')).toBe(768 * GB);
    expect(parseBytes('1.5T')).toBe(1.5e12);
    expect(parseBytes('4096')).toBe(4096);
    expect(() => parseBytes('12 parsecs', 'hostMemoryPerNode')).toThrow(/hostMemoryPerNode: got "12 parsecs"; expected a size such as 1TiB/);
    expect(() => parseBytes('0GB')).toThrow(/must be > 0/);
  });

  it('bandwidths: bits or bytes per second, and N x links', () => {
    expect(parseBandwidth('400Gbps')).toBe(50 * GB);
    expect(parseBandwidth('100Gb/s')).toBe(12.5 * GB);
    expect(parseBandwidth('8x200Gbps')).toBe(200 * GB);
    expect(parseBandwidth('25GB/s')).toBe(25 * GB);
    expect(parseBandwidth('600GiB/s')).toBe(600 * GiB);
    expect(() => parseBandwidth('400G', 'interNode')).toThrow(/interNode: got "400G"; expected a bandwidth such as 400Gbps/);
  });

  it('durations', () => {
    expect(parseDuration('20us')).toBeCloseTo(20e-6, 15);
    expect(parseDuration('1.5ms')).toBeCloseTo(1.5e-3, 15);
    expect(() => parseDuration('20')).toThrow(/expected a duration/);
  });
});
