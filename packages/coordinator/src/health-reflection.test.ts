// The coordinator's server speaks the gRPC ecosystem's conventions: grpc.health.v1 (Check, Watch)
// without a token, and server reflection (v1alpha, what grpcurl asks, and v1) behind the token.
// The clients are plain grpc-js clients built from the public .proto files the packages ship.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { clientAuthInterceptor, healthProtoRoot, reflectionProtoRoot } from '@mist/rpc';
import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator } from './server';

const TOKEN = 'health-test-token';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;

function clientCtor(file: string, includeDir: string, service: string): Ctor {
  const def = protoLoader.loadSync(file, { includeDirs: [includeDir], keepCase: true, enums: String, longs: Number, defaults: true, oneofs: true });
  let node: unknown = grpc.loadPackageDefinition(def);
  for (const part of service.split('.')) node = (node as Record<string, unknown>)[part];
  return node as Ctor;
}


interface HealthResponse { status: string }
interface ReflectionResponse {
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

function reflect(client: grpc.Client, request: Record<string, unknown>): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as { ServerReflectionInfo: () => grpc.ClientDuplexStream<unknown, ReflectionResponse> }).ServerReflectionInfo();
    call.on('data', (r: ReflectionResponse) => {
      resolve(r);
      call.end();
    });
    call.on('error', reject);
    call.write(request);
  });
}

describe('health and reflection on the coordinator', () => {
  it('answers health Check and Watch without a token, and goes NOT_SERVING when stopping', async () => {
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN });
    let stopped = false;
    cleanups.push(() => (stopped ? undefined : coord.stop()));
    const Health = clientCtor('health/v1/health.proto', healthProtoRoot(), 'grpc.health.v1.Health');
    const health = new Health(coord.address, grpc.credentials.createInsecure());
    cleanups.push(() => health.close());
    const check = (service: string): Promise<HealthResponse> => new Promise((resolve, reject) => {
      (health as unknown as { Check: (r: object, cb: (e: Error | null, r: HealthResponse) => void) => void })
        .Check({ service }, (err, res) => (err ? reject(err) : resolve(res)));
    });
    expect(await check('')).toEqual({ status: 'SERVING' });
    expect(await check('mist.v1.Coordinator')).toEqual({ status: 'SERVING' });
    expect(await check('mist.v1.AgentControl')).toEqual({ status: 'SERVING' });
    await expect(check('no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });

    const watch = (health as unknown as { Watch: (r: object) => grpc.ClientReadableStream<HealthResponse> }).Watch({ service: '' });
    const seen: string[] = [];
    const notServing = new Promise<void>((resolve) => {
      watch.on('data', (r: HealthResponse) => {
        seen.push(r.status);
        if (r.status === 'SERVING') {
          stopped = true;
          void coord.stop();
        }
        if (r.status === 'NOT_SERVING') resolve();
      });
      watch.on('error', () => resolve());
    });
    await notServing;
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
  });

  it('serves reflection (v1alpha and v1) with the token only', async () => {
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN });
    cleanups.push(() => coord.stop());
    for (const version of ['v1alpha', 'v1']) {
      const Reflection = clientCtor(`grpc/reflection/${version}/reflection.proto`, reflectionProtoRoot(), `grpc.reflection.${version}.ServerReflection`);
      const anonymous = new Reflection(coord.address, grpc.credentials.createInsecure());
      cleanups.push(() => anonymous.close());
      await expect(reflect(anonymous, { list_services: '*' })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });

      const client = new Reflection(coord.address, grpc.credentials.createInsecure(), { interceptors: [clientAuthInterceptor(TOKEN)] });
      cleanups.push(() => client.close());
      const list = await reflect(client, { list_services: '*' });
      const names = list.list_services_response!.service.map((s) => s.name);
      expect(names).toEqual(expect.arrayContaining(['mist.v1.Coordinator', 'mist.v1.AgentControl', 'grpc.health.v1.Health']));

      const file = await reflect(client, { file_containing_symbol: 'mist.v1.Coordinator' });
      const bytes = Buffer.concat(file.file_descriptor_response!.file_descriptor_proto);
      // The descriptor names the service's methods (what grpcurl describes and calls).
      expect(bytes.includes('SubmitJob')).toBe(true);
      expect(bytes.includes('WatchJob')).toBe(true);
      const missing = await reflect(client, { file_containing_symbol: 'mist.v1.NoSuchThing' });
      expect(missing.error_response?.error_code).toBe(grpc.status.NOT_FOUND);
    }
  });
});
