import { SpecError } from '@mist/core';
import { describe, expect, it } from 'vitest';
import { errorToStatus, rpcError, status } from './errors';

describe('errorToStatus', () => {
  it('maps bad input to INVALID_ARGUMENT, including a RangeError (was INTERNAL)', () => {
    expect(errorToStatus(new RangeError('offload step must be 1/n')).code).toBe(status.INVALID_ARGUMENT);
    expect(errorToStatus(new SpecError('plan', [{ field: 'tp', value: 3, message: 'must divide 4' }])).code).toBe(status.INVALID_ARGUMENT);
    expect(errorToStatus(new SyntaxError('Unexpected token')).code).toBe(status.INVALID_ARGUMENT);
  });

  it('keeps a status error, honours a package classifier, and says INTERNAL for the rest', () => {
    expect(errorToStatus(rpcError(status.NOT_FOUND, 'no job')).code).toBe(status.NOT_FOUND);
    const coded = Object.assign(new Error('busy'), { code: status.FAILED_PRECONDITION });
    expect(errorToStatus(coded)).toMatchObject({ code: status.FAILED_PRECONDITION, details: 'busy' });
    expect(errorToStatus(new Error('x'), () => rpcError(status.ALREADY_EXISTS, 'taken')).code).toBe(status.ALREADY_EXISTS);
    const internal = errorToStatus(new Error('bug'));
    expect({ code: internal.code, details: internal.details }).toEqual({ code: status.INTERNAL, details: 'bug' });
  });
});
