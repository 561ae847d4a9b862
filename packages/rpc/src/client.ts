// Typed clients of Mist services, and promise/async-iterator forms of their calls.
import * as grpc from '@grpc/grpc-js';
import { clientAuthInterceptor } from './auth';
import { type ClientOf, type ServiceName, serviceClientConstructor } from './services';
import { channelCredentials, type ClientTlsOptions, tlsChannelOptions } from './tls';

export interface ClientOptions {
  /** Shared token sent with every call. */
  token: string;
  /** Mutual TLS; plaintext without it. */
  tls?: ClientTlsOptions;
  /** Extra grpc-js client options (message size limits, keepalive). */
  grpcOptions?: grpc.ClientOptions;
}

/** A client of one service at `host:port`. The connection is made lazily, on the first call. */
export function createClient<N extends ServiceName>(name: N, address: string, options: ClientOptions): ClientOf<N> {
  const Ctor = serviceClientConstructor(name);
  const extra = options.grpcOptions ?? {};
  const client = new Ctor(address, channelCredentials(options.tls), {
    ...extra,
    ...tlsChannelOptions(options.tls),
    interceptors: [clientAuthInterceptor(options.token), ...(extra.interceptors ?? [])],
  });
  // The constructor is the one grpc-js builds from the same service definition the generated
  // interface describes.
  return client as unknown as ClientOf<N>;
}

/** A deadline `seconds` from now, for CallOptions.deadline. */
export function deadlineIn(seconds: number): Date {
  return new Date(Date.now() + seconds * 1000);
}

/** Waits until the client's channel is connected; rejects after `timeoutSeconds`. */
export function waitForReady(client: grpc.Client, timeoutSeconds: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(deadlineIn(timeoutSeconds), (err) => (err ? reject(err) : resolve()));
  });
}

// The generated clients declare each unary method with four overloads; the last is
// `(argument, callback)`, which is the one conditional types see.
type UnaryMethod<Req, Res> = (argument: Req, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

/** Names of a client's unary methods. */
export type UnaryMethodName<C> = {
  [K in keyof C]-?: C[K] extends UnaryMethod<infer _Req, infer _Res> ? K : never;
}[keyof C] & string;
export type UnaryRequest<C, K extends keyof C> = C[K] extends UnaryMethod<infer Req, infer _Res> ? Req : never;
export type UnaryResponse<C, K extends keyof C> = C[K] extends UnaryMethod<infer _Req, infer Res> ? Res : never;

/**
 * Makes a unary call and resolves with its response, e.g.
 * `await callUnary(client, 'analyze', request, { deadline: deadlineIn(30) })`.
 * Rejects with the grpc ServiceError (see isRpcError).
 */
export function callUnary<C extends grpc.Client, K extends UnaryMethodName<C>>(
  client: C,
  method: K,
  request: UnaryRequest<C, K>,
  options: grpc.CallOptions = {},
): Promise<UnaryResponse<C, K>> {
  const fn = client[method] as unknown as (
    argument: UnaryRequest<C, K>,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<UnaryResponse<C, K>>,
  ) => grpc.ClientUnaryCall;
  return new Promise((resolve, reject) => {
    fn.call(client, request, options, (err, response) => {
      if (err) reject(err);
      else if (response === undefined) reject(new Error(`${method}: the call ended without a response`));
      else resolve(response);
    });
  });
}

/** The messages of a server stream as an async iterable; the stream's error (a ServiceError) is thrown. */
export async function* readStream<T>(call: grpc.ClientReadableStream<T>): AsyncGenerator<T, void, undefined> {
  for await (const message of call) yield message as T;
}
