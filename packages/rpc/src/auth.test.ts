import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AUTH_METADATA_KEY, checkToken, metadataHasToken } from './index';

function md(...values: string[]): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const v of values) m.add(AUTH_METADATA_KEY, v);
  return m;
}

describe('token check', () => {
  it('accepts exactly "Bearer <token>"', () => {
    expect(metadataHasToken(md('Bearer s3cret'), 's3cret')).toBe(true);
    expect(metadataHasToken(md('Bearer s3cre'), 's3cret')).toBe(false);
    expect(metadataHasToken(md('Bearer s3cretX'), 's3cret')).toBe(false);
    expect(metadataHasToken(md('bearer s3cret'), 's3cret')).toBe(false);
    expect(metadataHasToken(md('s3cret'), 's3cret')).toBe(false);
    expect(metadataHasToken(md(), 's3cret')).toBe(false);
  });
  it('refuses two authorization values (no picking the one that matches)', () => {
    expect(metadataHasToken(md('Bearer wrong', 'Bearer s3cret'), 's3cret')).toBe(false);
  });
  it('wants a non-empty printable token', () => {
    expect(() => checkToken('')).toThrow(/required/);
    expect(() => checkToken('a b')).toThrow(/printable ASCII/);
    expect(() => checkToken('tok\n')).toThrow(/printable ASCII/);
    expect(() => checkToken('9f86d081884c7d65-9a2f')).not.toThrow();
  });
});
