// Typed helpers to serve Mist services: createServer -> addService -> startServer -> stopServer.
import * as grpc from '@grpc/grpc-js';
import { serverAuthInterceptor } from './auth';
import { callObserverInterceptor, type ObservedCall } from './call-observer';
import type { AuthThrottleOptions } from './auth-throttle';
import { type HandlersOf, type ServiceName, serviceDefinition } from './services';
import { serverCredentials, type TlsOptions } from './tls';

export interface ServerOptions {
  /** Shared token every call must carry. */
  token: string;
  /** When set, the token of AgentControl calls (agents), which `token` (users) then cannot make, and the reverse. */
  agentToken?: string;
  /** Logging and throttling of calls with a wrong token (defaults: DEFAULT_AUTH_THROTTLE). */
  authThrottle?: Partial<AuthThrottleOptions>;
  /** Mutual TLS; plaintext without it. */
  tls?: TlsOptions;
  /** Extra grpc-js server options (message size limits, keepalive). */
  grpcOptions?: grpc.ServerOptions;
  /** Fully qualified services whose calls need no token (the health service: probes cannot send one). */
  openServices?: readonly string[];
  /** Told of every call's method, status and duration, refused ones included (metrics). */
  observe?: (call: ObservedCall) => void;
}

export interface RpcServer {
  readonly grpcServer: grpc.Server;
  readonly credentials: grpc.ServerCredentials;
}

export function createServer(options: ServerOptions): RpcServer {
  const extra = options.grpcOptions ?? {};
  const grpcServer = new grpc.Server({
    ...extra,
    // The token check runs first, before any interceptor the caller adds (only the observer, which
    // must see refused calls too, comes before it).
    interceptors: [
      ...(options.observe ? [callObserverInterceptor(options.observe)] : []),
      serverAuthInterceptor(options.token, options.agentToken, options.authThrottle, options.openServices),
      ...(extra.interceptors ?? []),
    ],
  });
  return { grpcServer, credentials: serverCredentials(options.tls) };
}

/** Adds one service of protos/mist/v1 with handlers typed by the generated interfaces. */
export function addService<N extends ServiceName>(server: RpcServer, name: N, handlers: HandlersOf<N>): void {
  server.grpcServer.addService(serviceDefinition(name), handlers);
}

/** Binds the address (`host:0` picks a free port) and returns the port bound. */
export function startServer(server: RpcServer, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.grpcServer.bindAsync(address, server.credentials, (err, port) => {
      if (err) reject(new Error(`cannot listen on ${address}: ${err.message}`));
      else resolve(port);
    });
  });
}

/**
 * Stops accepting calls and waits for the running ones to end, at most `graceSeconds`; then cancels
 * what is left (open server streams would otherwise keep a graceful shutdown waiting forever).
 */
export function stopServer(server: RpcServer, graceSeconds = 5): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.grpcServer.forceShutdown();
      resolve();
    }, graceSeconds * 1000);
    server.grpcServer.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
