// gRPC status errors: made by handlers, recognised by callers.
import * as grpc from '@grpc/grpc-js';

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
