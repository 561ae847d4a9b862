// gRPC status errors: made by handlers, recognised by callers.
import * as grpc from '@grpc/grpc-js';
import { SpecError } from '@mist/core';

export { status } from '@grpc/grpc-js';

/**
 * An error that ends a call with `code`: a unary handler passes it to its callback; a server-streaming
 * handler emits it on the call (`call.emit('error', rpcError(...))`), which grpc-js turns into the status.
 */
export function rpcError(code: grpc.status, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

/** True when `err` is a gRPC status error (optionally: with this code). */
export function isRpcError(err: unknown, code?: grpc.status): err is grpc.ServiceError {
  if (!(err instanceof Error) || typeof (err as Partial<grpc.ServiceError>).code !== 'number') return false;
  return code === undefined || (err as grpc.ServiceError).code === code;
}

/**
 * The one mapping from a handler's error to the status it ends the call with (every service of
 * Mist-TS uses it): a gRPC status error (or any Error carrying a numeric gRPC `code`, such as the
 * coordinator's RequestError) keeps its code; `classify` may map a package's own errors first; input
 * that does not validate (core's SpecError, a JSON SyntaxError, a RangeError naming a bad value) is
 * INVALID_ARGUMENT; anything else is INTERNAL. grpc-js applies the same "code if present, else
 * UNKNOWN" rule to thrown errors (server-call.ts serverErrorToStatus); we say INTERNAL instead.
 */
export function errorToStatus(err: unknown, classify?: (err: unknown) => grpc.ServiceError | undefined): grpc.ServiceError {
  const own = classify?.(err);
  if (own) return own;
  const message = err instanceof Error ? err.message : String(err);
  if (isRpcError(err)) return err.details !== undefined && err.metadata ? err : rpcError(err.code, message);
  if (err instanceof Error && (err instanceof SpecError || err instanceof SyntaxError || err instanceof RangeError)) {
    return rpcError(grpc.status.INVALID_ARGUMENT, message);
  }
  return rpcError(grpc.status.INTERNAL, message);
}
