// The five services of protos/mist/v1 with their generated client and handler types, and the
// runtime definitions proto-loader builds from the same files.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { AgentControlClient, AgentControlHandlers } from './generated/mist/v1/AgentControl';
import type { AnalyzerClient, AnalyzerHandlers } from './generated/mist/v1/Analyzer';
import type { CoordinatorClient, CoordinatorHandlers } from './generated/mist/v1/Coordinator';
import type { ProfilerClient, ProfilerHandlers } from './generated/mist/v1/Profiler';
import type { TunerClient, TunerHandlers } from './generated/mist/v1/Tuner';
import { loaderOptions } from './proto-options';
import { protoFiles } from './paths';

export const PROTO_PACKAGE = 'mist.v1';

/** Service name -> the generated client interface and server handler interface. */
export interface MistServices {
  Coordinator: { client: CoordinatorClient; handlers: CoordinatorHandlers };
  AgentControl: { client: AgentControlClient; handlers: AgentControlHandlers };
  Tuner: { client: TunerClient; handlers: TunerHandlers };
  Analyzer: { client: AnalyzerClient; handlers: AnalyzerHandlers };
  Profiler: { client: ProfilerClient; handlers: ProfilerHandlers };
}
export type ServiceName = keyof MistServices;
export type ClientOf<N extends ServiceName> = MistServices[N]['client'];
export type HandlersOf<N extends ServiceName> = MistServices[N]['handlers'];

export const SERVICE_NAMES: readonly ServiceName[] = ['Coordinator', 'AgentControl', 'Tuner', 'Analyzer', 'Profiler'];

let packageDefinition: protoLoader.PackageDefinition | undefined;
let grpcObject: grpc.GrpcObject | undefined;

/** All of protos/mist/v1 loaded once (proto-loader, no protoc). */
export function mistPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.loadSync(protoFiles(), loaderOptions());
  return packageDefinition;
}

/** Fully qualified names (`mist.v1.Tuner`) of every service the protos define. */
export function protoServiceNames(): string[] {
  const def = mistPackageDefinition();
  return Object.keys(def).filter((name) => {
    const entry = def[name];
    return !('format' in entry) && !('type' in entry);
  });
}

function grpcPackage(): grpc.GrpcObject {
  grpcObject ??= grpc.loadPackageDefinition(mistPackageDefinition());
  return grpcObject;
}

/** The client constructor grpc-js makes for a service; `.service` is its definition. */
export function serviceClientConstructor(name: ServiceName): grpc.ServiceClientConstructor {
  let node: unknown = grpcPackage();
  for (const part of [...PROTO_PACKAGE.split('.'), name]) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== 'function' || !('service' in node)) {
    throw new Error(`service ${PROTO_PACKAGE}.${name} is not defined in the protos`);
  }
  return node as grpc.ServiceClientConstructor;
}

export function serviceDefinition(name: ServiceName): grpc.ServiceDefinition {
  return serviceClientConstructor(name).service;
}
