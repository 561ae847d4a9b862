// The deploy files parse, and every `mist` sub-command, flag and MIST_* variable they name exists in
// the CLI and the code; ports agree between Services, compose, probes, images and the flags. No
// image is built here (no docker on CI): the Dockerfiles are read as text.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { COORDINATOR_CLI_OPTIONS } from '@mist/app-coordinator';
import { describe, expect, it } from 'vitest';
import {
  argvInvocation, checkEnvVars, checkInvocations, type Invocation, flagValue, parseDockerfile, portOf, shellInvocations, yamlDocs,
} from './check-deploy';
import { cliFlags, DEPLOY, envVarsRead, REPO } from './cli-surface';

type Obj = Record<string, unknown>;
const read = (file: string): string => fs.readFileSync(path.join(DEPLOY, file), 'utf8');
const cli = cliFlags();
const envKnown = envVarsRead();
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

function deployFiles(dir = DEPLOY, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'test') deployFiles(p, out);
    } else if (e.name !== 'package.json') out.push(path.relative(DEPLOY, p));
  }
  return out.sort();
}

/** Kubernetes objects of a file by kind/name. */
function k8s(file: string): Map<string, Obj> {
  return new Map((yamlDocs(file) as Obj[]).map((d) => [`${d.kind as string}/${(d.metadata as Obj).name as string}`, d]));
}

const podSpec = (workload: Obj): Obj => ((workload.spec as Obj).template as Obj).spec as Obj;
const container = (workload: Obj): Obj => (podSpec(workload).containers as Obj[])[0];
const containerPort = (c: Obj, name: string): number => ((c.ports as Obj[]).find((p) => p.name === name)!).containerPort as number;

describe('deploy files', () => {
  it('all exist, and every YAML file parses', () => {
    const files = deployFiles();
    for (const f of ['Dockerfile', 'Dockerfile.cuda', 'compose.yaml', 'kubernetes/coordinator.yaml', 'kubernetes/agents.yaml',
      'kubernetes/secret.example.yaml', 'kubernetes/kustomization.yaml', 'kubernetes/mtls/kustomization.yaml', 'slurm/mist.sbatch',
      'systemd/mist-coordinator.service', 'systemd/mist-agent.service']) expect(files).toContain(f);
    for (const f of files.filter((x) => x.endsWith('.yaml'))) expect(yamlDocs(f).length, f).toBeGreaterThan(0);
    expect(() => yamlDocs('broken.yaml', 'a: [1, 2\nb: c')).toThrow(/broken\.yaml/);
  });

  it('name only MIST_* variables that the code reads', () => {
    expect([...envKnown]).toEqual(expect.arrayContaining(['MIST_TOKEN', 'MIST_AGENT_TOKEN', 'MIST_COORDINATOR']));
    const problems = deployFiles().flatMap((f) => checkEnvVars(f, read(f), envKnown));
    expect(problems).toEqual([]);
    expect(checkEnvVars('x', 'MIST_TOKENS=1', envKnown)).toEqual(['x: MIST_TOKENS is not an environment variable Mist reads']);
  });
});

/** Every `mist` invocation in the deploy files. */
function allInvocations(): Invocation[] {
  const out: Invocation[] = [];
  for (const f of ['slurm/mist.sbatch', 'systemd/mist-coordinator.service', 'systemd/mist-agent.service', 'Dockerfile', 'Dockerfile.cuda']) {
    out.push(...shellInvocations(f, read(f)));
  }
  for (const f of ['Dockerfile', 'Dockerfile.cuda']) {
    const cmd = parseDockerfile(read(f)).stages.at(-1)!.instructions.filter((i) => i.op === 'CMD').at(-1)!;
    out.push(argvInvocation(f, JSON.parse(cmd.value) as string[]));
  }
  const compose = yamlDocs('compose.yaml')[0] as { services: Record<string, Obj> };
  for (const [name, s] of Object.entries(compose.services)) out.push(argvInvocation(`compose.yaml#${name}`, s.command as string[]));
  for (const f of ['kubernetes/coordinator.yaml', 'kubernetes/agents.yaml']) {
    for (const [key, obj] of k8s(f)) if (/^(StatefulSet|DaemonSet)\//.test(key)) out.push(argvInvocation(`${f}#${key}`, container(obj).args as string[]));
  }
  // The mutual-TLS overlay adds flags to the same containers' args.
  for (const [patch, sub] of [['kubernetes/mtls/coordinator-tls.yaml', 'coordinator'], ['kubernetes/mtls/agent-tls.yaml', 'agent']]) {
    const ops = yamlDocs(patch)[0] as Array<{ path: string; value: unknown }>;
    out.push(argvInvocation(patch, [sub, ...ops.filter((o) => o.path.endsWith('/args/-')).map((o) => String(o.value))]));
  }
  return out;
}

describe('mist commands in the deploy files', () => {
  const invocations = allInvocations();

  it('are found in every file that starts one', () => {
    const subs = (file: string): string[] => invocations.filter((i) => i.file.startsWith(file)).map((i) => i.sub);
    expect(subs('slurm/mist.sbatch')).toEqual(['coordinator', 'agent', 'agents', 'launch']);
    expect(subs('systemd/mist-coordinator.service')).toEqual(['coordinator']);
    expect(subs('systemd/mist-agent.service')).toEqual(['agent']);
    expect(subs('compose.yaml')).toEqual(['coordinator', 'agent', 'agent']);
    expect(subs('kubernetes/')).toEqual(['coordinator', 'agent', 'coordinator', 'agent']);
    expect(subs('Dockerfile')).toEqual(['coordinator', 'agent']);
  });

  it('use only sub-commands and flags the CLI has', () => {
    expect(checkInvocations(invocations, cli)).toEqual([]);
  });

  it('fail the check when a flag or a command is renamed', () => {
    const renamed = read('slurm/mist.sbatch').replace('--metrics-listen "0.0.0.0', '--metrics-address "0.0.0.0');
    expect(checkInvocations(shellInvocations('slurm/mist.sbatch', renamed), cli)).toEqual(['slurm/mist.sbatch: `mist coordinator` has no flag --metrics-address']);
    const withoutFlag = new Map(cli);
    withoutFlag.set('agent', new Set([...cli.get('agent')!].filter((f) => f !== 'log-format')));
    expect(checkInvocations(invocations, withoutFlag).length).toBeGreaterThanOrEqual(5);
    expect(checkInvocations([argvInvocation('x', ['coordinatr', '--state', '/s'])], cli)[0]).toMatch(/`mist coordinatr` is not a mist command/);
  });
});

describe('ports and names agree', () => {
  const coordDefault = portOf(/default (\S+?)[;)]/.exec(COORDINATOR_CLI_OPTIONS.listen.description)![1]);

  it('in Kubernetes: Service, container ports, probes, annotations, the agents\' --coordinator, the Secret', () => {
    const coord = k8s('kubernetes/coordinator.yaml');
    const agents = k8s('kubernetes/agents.yaml');
    const sts = coord.get('StatefulSet/mist-coordinator')!;
    const svc = coord.get('Service/mist-coordinator')!;
    const c = container(sts);
    const inv = argvInvocation('coordinator', c.args as string[]);
    const grpc = portOf(flagValue(inv, 'listen'));
    const metrics = portOf(flagValue(inv, 'metrics-listen'));
    expect(grpc).toBe(coordDefault);
    expect(containerPort(c, 'grpc')).toBe(grpc);
    expect(containerPort(c, 'metrics')).toBe(metrics);
    const svcPorts = (svc.spec as Obj).ports as Obj[];
    expect(svcPorts.map((p) => [p.name, p.port, p.targetPort])).toEqual([['grpc', grpc, 'grpc'], ['metrics', metrics, 'metrics']]);
    expect((svc.spec as Obj).selector).toEqual(((sts.spec as Obj).selector as Obj).matchLabels);
    expect(((c.readinessProbe as Obj).grpc as Obj).port).toBe(grpc);
    expect(((c.livenessProbe as Obj).grpc as Obj).port).toBe(grpc);
    const annotations = (((sts.spec as Obj).template as Obj).metadata as Obj).annotations as Obj;
    expect(Number(annotations['prometheus.io/port'])).toBe(metrics);
    // --state is the mounted PersistentVolume of the StatefulSet.
    const stateMount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === flagValue(inv, 'state'))!;
    expect(((sts.spec as Obj).volumeClaimTemplates as Obj[]).map((t) => (t.metadata as Obj).name)).toContain(stateMount.name);
    expect((podSpec(sts).securityContext as Obj).runAsNonRoot).toBe(true);

    const ds = agents.get('DaemonSet/mist-agent')!;
    const a = container(ds);
    const agentInv = argvInvocation('agent', a.args as string[]);
    const svcMeta = svc.metadata as Obj;
    expect(flagValue(agentInv, 'coordinator')).toBe(`${svcMeta.name as string}.${svcMeta.namespace as string}.svc.cluster.local:${grpc}`);
    expect(podSpec(ds).hostNetwork).toBe(true);
    expect(podSpec(ds).dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(((a.resources as Obj).limits as Obj)['nvidia.com/gpu']).toBeGreaterThan(0);
    const agentAnnotations = (((ds.spec as Obj).template as Obj).metadata as Obj).annotations as Obj;
    expect(Number(agentAnnotations['prometheus.io/port'])).toBe(portOf(flagValue(agentInv, 'metrics-listen')));
    // $(VAR) in args must be env vars of the container.
    const envNames = (a.env as Obj[]).map((e) => e.name);
    for (const arg of a.args as string[]) for (const m of arg.matchAll(/\$\((\w+)\)/g)) expect(envNames).toContain(m[1]);

    // Every secretKeyRef points at a key of the example Secret.
    const secret = k8s('kubernetes/secret.example.yaml').get('Secret/mist-tokens')!;
    const keys = Object.keys(secret.stringData as Obj);
    for (const env of [...(c.env as Obj[]), ...(a.env as Obj[])]) {
      const ref = (env.valueFrom as Obj | undefined)?.secretKeyRef as Obj | undefined;
      if (!ref) continue;
      expect(ref.name).toBe('mist-tokens');
      expect(keys).toContain(ref.key);
    }
    expect((c.env as Obj[]).map((e) => e.name)).toEqual(['MIST_TOKEN', 'MIST_AGENT_TOKEN']);
    expect(envNames).toContain('MIST_AGENT_TOKEN');
  });

  it('in the kustomizations: every resource and patch file exists, and patches target objects that exist', () => {
    for (const dir of ['kubernetes', 'kubernetes/mtls']) {
      const k = yamlDocs(`${dir}/kustomization.yaml`)[0] as { resources: string[]; patches?: Array<{ path: string; target: { kind: string; name: string } }> };
      for (const r of k.resources) expect(fs.existsSync(path.join(DEPLOY, dir, r)), r).toBe(true);
      for (const p of k.patches ?? []) {
        expect(fs.existsSync(path.join(DEPLOY, dir, p.path))).toBe(true);
        const all = new Map([...k8s('kubernetes/coordinator.yaml'), ...k8s('kubernetes/agents.yaml')]);
        const target = all.get(`${p.target.kind}/${p.target.name}`)!;
        expect(target, `${p.target.kind}/${p.target.name}`).toBeDefined();
        // The JSON patch paths exist in the target: `add .../-` appends to a list, `replace` needs the key.
        for (const op of yamlDocs(`${dir}/${p.path}`)[0] as Array<{ op: string; path: string }>) {
          let node: unknown = target;
          const parts = op.path.split('/').slice(1);
          for (const part of parts.slice(0, -1)) node = (node as Record<string, unknown>)[part];
          if (op.op === 'add' && parts.at(-1) === '-') expect(Array.isArray(node), op.path).toBe(true);
          else {
            expect(op.op, op.path).toBe('replace');
            expect((node as Record<string, unknown>)[parts.at(-1)!], op.path).toBeDefined();
          }
        }
      }
    }
  });

  it('in compose: published ports, the agents\' --coordinator, the image', () => {
    const compose = yamlDocs('compose.yaml')[0] as { services: Record<string, Obj>; volumes: Obj };
    const coord = compose.services.coordinator;
    const inv = argvInvocation('coordinator', coord.command as string[]);
    const grpc = portOf(flagValue(inv, 'listen'));
    const published = (s: Obj): number[] => (s.ports as string[]).map((p) => Number(p.split(':').pop()));
    expect(published(coord)).toEqual([grpc, portOf(flagValue(inv, 'metrics-listen'))]);
    for (const name of ['agent-a', 'agent-b']) {
      const s = compose.services[name];
      const a = argvInvocation(name, s.command as string[]);
      expect(flagValue(a, 'coordinator')).toBe(`coordinator:${grpc}`);
      expect(flagValue(a, 'address')).toBe(name);
      expect(published(s)).toEqual([portOf(flagValue(a, 'metrics-listen'))]);
      expect(s.depends_on).toEqual(['coordinator']);
    }
    expect(coord.image).toBe(`\${IMAGE:-mist:${VERSION}}`);
    const build = coord.build as { context: string; dockerfile: string };
    expect(fs.existsSync(path.join(DEPLOY, build.context, build.dockerfile))).toBe(true);
    expect(Object.keys(compose.volumes)).toContain(String((coord.volumes as string[])[0]).split(':')[0]);
  });

  it('in the images: non-root, ports exposed, the addon built against the image\'s own Node headers, a CUDA runtime base', () => {
    for (const f of ['Dockerfile', 'Dockerfile.cuda']) {
      const d = parseDockerfile(read(f));
      const final = d.stages.at(-1)!;
      const user = final.instructions.filter((i) => i.op === 'USER').at(-1)!.value;
      expect(user, f).not.toMatch(/^(0|root)\b/);
      const names = new Set(d.stages.map((s) => s.name));
      for (const i of d.stages.flatMap((s) => s.instructions)) {
        const from = /--from=(\S+)/.exec(i.value);
        if (i.op === 'COPY' && from) expect(names.has(from[1]), `${f}: COPY --from=${from[1]}`).toBe(true);
      }
      const exposed = final.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.value.split(/\s+/).map(Number));
      expect(exposed).toEqual(expect.arrayContaining([7070, 9464, 9465]));
      const build = d.stages.find((s) => s.name === 'build')!;
      // tools/scripts/build-native.js runs node-gyp --nodedir=$MIST_NODEDIR; /usr/local holds the image's include/node.
      expect(build.instructions).toContainEqual({ op: 'ENV', value: 'MIST_NODEDIR=/usr/local' });
      expect(build.instructions.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.value))).toBe(true);
      const entry = JSON.parse(final.instructions.find((i) => i.op === 'ENTRYPOINT')!.value) as string[];
      expect(fs.existsSync(path.join(REPO, entry[1].replace('/opt/mist/', '')))).toBe(true);
    }
    expect(read('Dockerfile.cuda')).toMatch(/^ARG CUDA_IMAGE=nvidia\/cuda:[\d.]+-runtime-ubuntu[\d.]+$/m);
    expect(parseDockerfile(read('Dockerfile.cuda')).stages.at(-1)!.from).toMatch(/^nvidia\/cuda:.*-runtime-/);
    expect(fs.readFileSync(path.join(REPO, 'tools/scripts/build-native.js'), 'utf8')).toContain('process.env.MIST_NODEDIR');
    // Images named in compose and Kubernetes carry this version.
    const k8sImages = [...k8s('kubernetes/coordinator.yaml').values(), ...k8s('kubernetes/agents.yaml').values()]
      .filter((o) => o.kind !== 'Service').map((o) => container(o).image);
    expect(k8sImages).toEqual([`mist:${VERSION}`, `mist:${VERSION}-cuda`]);
  });

  it('in Slurm and systemd: the coordinator port and the agents\' address', () => {
    const sbatch = read('slurm/mist.sbatch');
    expect(sbatch).toContain(`COORD_PORT=\${COORD_PORT:-${coordDefault}}`);
    expect(sbatch).toContain('export MIST_COORDINATOR="${head_node}:${COORD_PORT}"');
    const [unitCoord] = shellInvocations('c', read('systemd/mist-coordinator.service'));
    expect(portOf(flagValue(unitCoord, 'listen'))).toBe(coordDefault);
    expect(read('systemd/mist-agent.service')).toMatch(/^EnvironmentFile=/m);
  });
});
