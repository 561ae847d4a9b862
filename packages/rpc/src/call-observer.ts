// A server interceptor that tells, for every call, its method, its final status code and how long
// it took (the coordinator turns this into its RPC latency histogram). It runs before the token
// check, so refused calls (UNAUTHENTICATED, RESOURCE_EXHAUSTED) are counted too. A call the client
// cancels before any status is counted as CANCELLED.
import * as grpc from '@grpc/grpc-js';

export interface ObservedCall {
  /** `/package.Service/Method`. */
  path: string;
  /** The status code's name, e.g. "OK", "UNAUTHENTICATED". */
  code: string;
  seconds: number;
  /** Neither side streams: the duration is a latency (a stream's is its lifetime). */
  unary: boolean;
}

/** grpc.status numbers -> their names (OK, CANCELLED, ...). */
export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}

export function callObserverInterceptor(observe: (call: ObservedCall) => void): grpc.ServerInterceptor {
  return (method, call) => {
    const start = process.hrtime.bigint();
    const unary = !method.requestStream && !method.responseStream;
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      observe({ path: method.path, code: statusName(code), seconds: Number(process.hrtime.bigint() - start) / 1e9, unary });
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => finish(grpc.status.CANCELLED) }),
      sendStatus: (status, next) => {
        finish(status.code);
        next(status);
      },
    });
  };
}
