// The deploy files' commands, run here with the built `mist` CLI (apps/cli/bin/mist.js):
// - the Slurm batch script itself, with `srun` and `scontrol` replaced by small shell scripts on
//   PATH that run each task on this machine (nodes 127.0.0.1 and 127.0.0.2, both loopback);
//   while its job trains, the coordinator's and both agents' metrics are scraped;
// - the compose file's three commands, with its container addresses mapped to 127.0.0.1.
// Both train a small gpt-tiny job to success.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { samples as metric, scrapeMetrics as scrape } from '../../apps/agent/src/test/prometheus';
import { CoordinatorConnection } from '@mist/coordinator';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { argvInvocation, flagValue, yamlDocs } from './check-deploy';
import { DEPLOY, REPO } from './cli-surface';

const MIST_JS = path.join(REPO, 'apps/cli/bin/mist.js');
const USER_TOKEN = 'deploy-test-user-token';
const AGENT_TOKEN = 'deploy-test-agent-token';
const cleanups: Array<() => unknown> = [];
beforeAll(() => {
  // The scripts run the built CLI (npm ci builds it; after a change: npm run build:ts).
  if (!fs.existsSync(path.join(REPO, 'apps/cli/dist/main.js'))) throw new Error('apps/cli/dist is missing: run `npm run build:ts` first');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-deploy-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A job file: gpt-tiny, pp=2 x dp=2 on two agents of two CPU devices, `steps` steps on the shipped corpus. */
function jobFile(dir: string, steps: number): string {
  const stage = (layers: [number, number]) => ({
    layers, mesh: { nodes: 1, gpusPerNode: 2 }, microBatchSize: 1, dp: 2, tp: 1, sequenceParallel: false, ckptLayers: 0, zero: 0,
    offload: { weights: 0, grads: 0, optim: 0, activations: 0 },
  });
  const file = path.join(dir, 'job.json');
  fs.writeFileSync(file, JSON.stringify({
    name: 'deploy-test', model: 'gpt-tiny', training: { globalBatch: 8, seqLen: 64 }, backend: 'cpu',
    plan: { version: 1, model: 'gpt-tiny', seqLen: 64, globalBatch: 8, gradAccumSteps: 4, stages: [stage([0, 1]), stage([2, 3])] },
    run: { steps, seed: 1, learningRate: 0.003, data: 'corpus' },
  }));
  return file;
}

interface Proc {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Resolves with the first stdout line matching `re`. */
  line(re: RegExp): Promise<RegExpExecArray>;
  output: () => string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = REPO): Proc {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const waiting: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = [];
  const seen: string[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    output += `${l}\n`;
    seen.push(l);
    for (const w of [...waiting]) {
      const m = w.re.exec(l);
      if (m) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // The whole process group: a script's srun stubs and their mist processes too.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
  });
  return {
    child, exited, output: () => output,
    line: (re) => new Promise((resolve, reject) => {
      const m = seen.map((l) => re.exec(l)).find((x) => x);
      if (m) resolve(m);
      else waiting.push({ re, resolve });
      void exited.then((code) => reject(new Error(`${cmd} exited (${code}) before printing ${re}:\n${output}`)));
    }),
  };
}

/** `srun` and `scontrol` as shell scripts that run each task on this machine. */
function slurmStubs(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'scontrol'), `#!/bin/bash
# scontrol show hostnames LIST: one node per line (the test's lists are plain comma-separated names).
[ "$1 $2" = "show hostnames" ] || { echo "scontrol stub: only 'show hostnames'" >&2; exit 2; }
tr ',' '\\n' <<< "$3"
`, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'srun'), `#!/bin/bash
# srun: one task per chosen node (--nodelist, else the first --nodes of SLURM_JOB_NODELIST), run
# here with SLURMD_NODENAME and SLURM_PROCID set; SIGTERM is passed on to the tasks.
IFS=',' read -r -a all <<< "$SLURM_JOB_NODELIST"
count=\${#all[@]}
list=""
while [[ "$1" == -* ]]; do
  case "$1" in
    --nodes=*) count=\${1#--nodes=} ;;
    --nodelist=*) list=\${1#--nodelist=} ;;
    --ntasks=*|--ntasks-per-node=*|--overlap|--gres=*) ;;
    *) echo "srun stub: unexpected option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$list" ]; then IFS=',' read -r -a nodes <<< "$list"; else nodes=("\${all[@]:0:$count}"); fi
pids=()
i=0
for node in "\${nodes[@]}"; do
  SLURMD_NODENAME=$node SLURM_PROCID=$i "$@" &
  pids+=($!)
  i=$((i + 1))
done
trap 'kill -TERM "\${pids[@]}" 2>/dev/null' TERM INT
status=0
for pid in "\${pids[@]}"; do
  while true; do
    wait "$pid"; rc=$?
    # 128+n: wait was interrupted by the trapped signal; the task may still be running.
    if [ $rc -gt 128 ] && kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  [ $rc -ne 0 ] && status=$rc
done
exit $status
`, { mode: 0o755 });
  return bin;
}

describe('the Slurm batch script', () => {
  it('starts the coordinator and one agent per node, launches the job and exits with its success; metrics are live meanwhile', async () => {
    const dir = tmpDir();
    const bin = slurmStubs(dir);
    const [coordPort, coordMetrics, agentMetrics] = [await freePort(), await freePort(), await freePort()];
    const stateDir = path.join(dir, 'state');
    const env: NodeJS.ProcessEnv = {
      ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir,
      SLURM_JOB_ID: '4242', SLURM_JOB_NODELIST: '127.0.0.1,127.0.0.2',
      MIST: `${process.execPath} ${MIST_JS}`, STATE_DIR: stateDir, LOG_DIR: path.join(dir, 'logs'), COORD_PORT: String(coordPort), COORD_METRICS_PORT: String(coordMetrics),
      AGENT_METRICS_PORT: String(agentMetrics), AGENT_ARGS: '--cpu-devices 2', READY_TIMEOUT: '120',
      MIST_TOKEN: USER_TOKEN, MIST_AGENT_TOKEN: AGENT_TOKEN,
    };
    delete env.MIST_COORDINATOR;
    const steps = 30;
    const script = run('bash', [path.join(DEPLOY, 'slurm/mist.sbatch'), jobFile(dir, steps)], env);
    // `mist launch` prints the job id first, then follows the job.
    const [, jobId] = await script.line(/^([A-Za-z0-9._-]+)$/);
    const conn = new CoordinatorConnection(`127.0.0.1:${coordPort}`, { token: USER_TOKEN });
    cleanups.push(() => conn.close());
    let pages: { coordinator: string; agents: string[] } | undefined;
    for await (const e of conn.watch(jobId, { replay: true })) {
      const m = e.worker?.metrics;
      if (m?.loss !== undefined && m.step >= 2) {
        pages = {
          coordinator: await scrape(`127.0.0.1:${coordMetrics}`),
          agents: await Promise.all(['127.0.0.1', '127.0.0.2'].map((h) => scrape(`${h}:${agentMetrics}`))),
        };
        break;
      }
    }
    const code = await script.exited;
    expect(code, script.output()).toBe(0);
    expect(script.output()).toMatch(/mist: coordinator on 127\.0\.0\.1, 2 agent\(s\)/);

    expect(metric(pages!.coordinator, 'mist_coordinator_jobs', { state: 'running' })).toEqual([1]);
    expect(metric(pages!.coordinator, 'mist_coordinator_agents', { state: 'alive' })).toEqual([2]);
    for (const page of pages!.agents) {
      expect(metric(page, 'mist_agent_workers')).toEqual([2]);
      const stepSeconds = metric(page, 'mist_agent_rank_step_seconds', { job: jobId });
      expect(stepSeconds).toHaveLength(2);
      for (const s of stepSeconds) expect(s).toBeGreaterThan(0);
    }
    expect(pages!.agents.flatMap((p) => metric(p, 'mist_agent_rank_loss', { job: jobId }))).toHaveLength(2);

    // The logs are JSON lines, with the job's id on its lines and each agent's id on its own.
    const logs = path.join(dir, 'logs');
    const parse = (file: string) => fs.readFileSync(path.join(logs, file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const coordLines = parse('coordinator.log');
    expect(coordLines.some((l) => l.job === jobId && l.level === 'info' && l.name === 'coordinator')).toBe(true);
    const agentLines = parse('agents.log');
    expect(agentLines.some((l) => l.job === jobId && Array.isArray(l.ranks) && typeof l.agent === 'string' && l.name === 'agent')).toBe(true);
    expect(fs.readFileSync(path.join(logs, 'coordinator.out'), 'utf8')).toMatch(/^coordinator listening on 0\.0\.0\.0:\d+$/m);
    expect(fs.existsSync(path.join(stateDir, 'coordinator.sqlite'))).toBe(true);
  });
});

describe('the compose file\'s commands', () => {
  it('run here as a coordinator and two agents that train a job', async () => {
    const dir = tmpDir();
    const compose = yamlDocs('compose.yaml')[0] as { services: Record<string, { command: string[]; environment: Record<string, string> }> };
    const tokens: Record<string, string> = { MIST_TOKEN: USER_TOKEN, MIST_AGENT_TOKEN: AGENT_TOKEN };
    /** The service's environment with compose's ${VAR:?message} filled in. */
    const envOf = (name: string): NodeJS.ProcessEnv => {
      const env: NodeJS.ProcessEnv = { ...process.env };
      delete env.MIST_TOKEN;
      delete env.MIST_AGENT_TOKEN;
      delete env.MIST_COORDINATOR;
      for (const [k, v] of Object.entries(compose.services[name].environment)) {
        env[k] = v.replace(/\$\{(\w+):\?[^}]*\}/g, (_s, n: string) => tokens[n]);
      }
      return env;
    };
    // Container addresses become this machine's: listen on 127.0.0.1 (free ports), state in a temp dir.
    const local = (argv: string[], coordinator?: string): string[] => argv.map((a) => a
      .replace(/^0\.0\.0\.0:\d+$/, '127.0.0.1:0')
      .replace(/^\/var\/lib\/mist$/, path.join(dir, 'state'))
      .replace(/^coordinator:\d+$/, coordinator ?? a)
      .replace(/^agent-[ab]$/, (h) => (argv[argv.indexOf(h) - 1] === '--address' ? '127.0.0.1' : h)));

    const coordArgv = compose.services.coordinator.command;
    expect(flagValue(argvInvocation('c', coordArgv), 'state')).toBe('/var/lib/mist');
    const coord = run(process.execPath, [MIST_JS, ...local(coordArgv)], envOf('coordinator'));
    const [, address] = await coord.line(/^coordinator listening on (\S+)$/);
    const [, coordMetrics] = await coord.line(/^coordinator metrics on http:\/\/(\S+)\/metrics$/);
    const agentMetrics: string[] = [];
    for (const name of ['agent-a', 'agent-b']) {
      const agent = run(process.execPath, [MIST_JS, ...local(compose.services[name].command, address)], envOf(name));
      agentMetrics.push((await agent.line(/^agent metrics on http:\/\/(\S+)\/metrics$/))[1]);
      await agent.line(/^agent (\S+) registered$/);
    }
    const launch = run(process.execPath, [MIST_JS, 'launch', jobFile(dir, 3), '--coordinator', address], { ...process.env, MIST_TOKEN: USER_TOKEN });
    expect(await launch.exited, launch.output()).toBe(0);
    expect(metric(await scrape(coordMetrics), 'mist_coordinator_jobs', { state: 'succeeded' })).toEqual([1]);
    for (const m of agentMetrics) {
      const page = await scrape(m);
      expect(metric(page, 'mist_agent_devices', { kind: 'cpu' })).toEqual([2]);
      expect(metric(page, 'mist_agent_worker_exits_total', { result: 'ok' })).toEqual([2]);
    }
    // SIGTERM: the coordinator logs its stop as JSON and exits 0.
    coord.child.kill('SIGTERM');
    expect(await coord.exited).toBe(0);
    const jsonLines = coord.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; level: string });
    expect(jsonLines.some((l) => l.msg === 'SIGTERM: stopping' && l.level === 'info')).toBe(true);
  });
});
