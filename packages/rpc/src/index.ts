// @mist/rpc: the gRPC contracts of protos/mist/v1 as TypeScript types, typed server and client
// helpers, and the shared-token (+ optional mutual TLS) authentication every service uses.
export * from './generated';
export * from './paths';
export * from './services';
export * from './auth';
export * from './auth-throttle';
export * from './tls';
export * from './server';
export * from './client';
export * from './errors';
export * from './call-observer';
export * from './health';
export * from './logger';
export * from './metrics-http';
