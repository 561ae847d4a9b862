// The gRPC ecosystem's conventions on a Mist server: the standard health service
// (grpc.health.v1.Health, Check and Watch; what grpc_health_probe and Kubernetes' gRPC probes
// call) and server reflection (grpc.reflection.v1alpha, which grpcurl asks by default, and v1).
// Both come from the grpc-js project's packages (grpc-health-check, @grpc/reflection).
//
// Authentication: reflection goes through the same token check as every Mist service (grpcurl
// -H 'authorization: Bearer TOKEN'). Health is open (HEALTH_SERVICE in the server's
// `openServices`): probes cannot send our token, and it tells only SERVING / NOT_SERVING.
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import type * as Reflection from '@grpc/reflection';
import type * as Health from 'grpc-health-check';
import { loaderOptions } from './proto-options';
import type { RpcServer } from './server';
import { mistPackageDefinition, PROTO_PACKAGE, type ServiceName } from './services';

/** Fully qualified name of the health service. */
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

// The two packages are loaded when a server is made, not by every importer of @mist/rpc (together
// they take ~80 ms to load, which every CLI command would pay).
const health = (): typeof Health => require('grpc-health-check') as typeof Health;
const reflection = (): typeof Reflection => require('@grpc/reflection') as typeof Reflection;

/** Include root of the public `health/v1/health.proto` (for clients and tests). */
export function healthProtoRoot(): string {
  return path.resolve(health().protoPath, '../../..');
}

/** Include root of the public `grpc/reflection/{v1alpha,v1}/reflection.proto` (for clients and tests). */
export function reflectionProtoRoot(): string {
  return path.resolve(path.dirname(require.resolve('@grpc/reflection')), '../proto');
}

export interface HealthHandle {
  /** Sets the status of the whole server ("") and of every listed service. */
  setServing(serving: boolean): void;
}

/**
 * Registers health (every name in `services`, as `mist.v1.<Name>`, and "" for the whole server,
 * all NOT_SERVING until setServing(true)) and reflection over the Mist protos and the health proto.
 */
export function addHealthAndReflection(server: RpcServer, services: readonly ServiceName[]): HealthHandle {
  const names = ['', ...services.map((s) => `${PROTO_PACKAGE}.${s}`)];
  const impl = new (health().HealthImplementation)(Object.fromEntries(names.map((n) => [n, 'NOT_SERVING' as Health.ServingStatus])));
  impl.addToServer(server.grpcServer);
  // Loaded by its name under its include root, so reflection lists it as health/v1/health.proto.
  const healthDefinition = protoLoader.loadSync('health/v1/health.proto', { ...loaderOptions(), includeDirs: [healthProtoRoot()] });
  new (reflection().ReflectionService)({ ...mistPackageDefinition(), ...healthDefinition }).addToServer(server.grpcServer);
  return {
    setServing: (serving) => {
      for (const n of names) impl.setStatus(n, serving ? 'SERVING' : 'NOT_SERVING');
    },
  };
}
