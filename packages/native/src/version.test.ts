import { describe, expect, it } from 'vitest';
import { version } from './index';

describe('native addon', () => {
  it('loads and reports its version', () => {
    expect(version()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
