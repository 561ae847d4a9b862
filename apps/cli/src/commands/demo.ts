// `mist demo`: the whole product on one machine with no GPU. It starts a coordinator and two agents
// (two CPU devices each) on 127.0.0.1 as child processes, measures this host (a smoke-sized
// profile), submits gpt-tiny with "tune" so the coordinator picks the plan for that 2x2 CPU
// cluster, follows the training with a progress bar, prints the plan and the final loss, and
// shuts everything down (also on Ctrl-C). With --dashboard the coordinator also serves its web
// dashboard; the URL and the token to log in with are printed, and the demo stays up after the job
// ends (the finished job stays on view) until Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { CoordinatorConnection } from '@mist/coordinator';
import { formatSeconds, getModel, parsePlan, type Plan, quantile } from '@mist/core';
import { profileHost, SMOKE_GRID } from '@mist/profiler';
import { type Command, intOpt } from '../cli/command';
import { ProgressBar } from '../cli/progress';
import { renderTable } from '../cli/table';
import { recomputeText } from '../cli/stage-text';

const MIST_BIN = path.resolve(__dirname, '../../bin/mist.js');

/**
 * The measured iteration time: the median step time of the second half of the run. The first steps
 * are slower while V8's optimizing compiler works through the hot loops (about steps 11-15, see
 * packages/profiler's probe), which a prediction of the steady state does not include.
 */
export function measuredStepTime(stepTimes: readonly number[]): { seconds: number; steps: string } | undefined {
  if (stepTimes.length === 0) return undefined;
  const from = Math.floor(stepTimes.length / 2);
  return { seconds: quantile(stepTimes.slice(from), 0.5), steps: `${from + 1}-${stepTimes.length}` };
}

/** `measured 55.10 ms/iteration vs predicted 52.30 ms (+5.4%)`. */
export function stepTimeComparison(measuredS: number, predictedS: number | undefined): string {
  if (predictedS === undefined || !(predictedS > 0)) return `measured ${formatSeconds(measuredS)}/iteration (no prediction)`;
  const diff = ((measuredS - predictedS) / predictedS) * 100;
  return `measured ${formatSeconds(measuredS)}/iteration vs predicted ${formatSeconds(predictedS)} (${diff >= 0 ? '+' : ''}${diff.toFixed(1)}%)`;
}

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

/**
 * Starts `mist ARGS` and resolves once a stdout line matches `ready` (rejects if it exits first);
 * `onLine` sees every stdout line (e.g. the metrics endpoint's address, printed after readiness).
 */
function startMist(
  name: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv, onLine?: (line: string) => void,
): Promise<{ child: Child; match: RegExpMatchArray }> {
  const proc = spawn(process.execPath, [MIST_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child = { name, proc, exited };
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      onLine?.(line);
      const m = ready.exec(line);
      if (m) resolve({ child, match: m });
    });
    void exited.then((code) => reject(new Error(`${name} exited with ${code} before it was ready:\n${stderr}`)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function stopAll(children: Child[]): Promise<void> {
  for (const c of [...children].reverse()) if (c.proc.exitCode === null) c.proc.kill('SIGTERM');
  const timer = setTimeout(() => { for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL'); }, 8000);
  await Promise.all(children.map((c) => c.exited));
  clearTimeout(timer);
}

function describePlan(plan: Plan): string {
  return renderTable(plan.stages, [
    { header: 'stage', value: (s) => plan.stages.indexOf(s) },
    { header: 'layers', value: (s) => `${s.layers[0]}-${s.layers[1]}` },
    { header: 'mesh', value: (s) => `${s.mesh.nodes}x${s.mesh.gpusPerNode}` },
    { header: 'dp x tp', value: (s) => `${s.dp} x ${s.tp}` },
    { header: 'b', value: (s) => s.microBatchSize },
    { header: 'ckpt', value: (s) => recomputeText(s) },
    { header: 'zero', value: (s) => s.zero },
  ]);
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'coordinator + 2 agents (2 CPU devices each) on 127.0.0.1: tune gpt-tiny for them and train it',
  usage: 'mist demo [--steps N] [--metrics] [--dashboard] [--json]',
  examples: [
    'mist demo', 'mist demo --steps 50 --json', 'mist demo --metrics   # then: curl the printed /metrics URLs while it trains',
    'mist demo --dashboard   # then: open the printed URL and log in with the printed token',
  ],
  options: {
    steps: { type: 'string', valueName: 'N', description: 'training steps', default: '300' },
    metrics: { type: 'boolean', description: 'serve Prometheus metrics from the coordinator and both agents (127.0.0.1, free ports) and print their URLs' },
    dashboard: {
      type: 'boolean',
      description: 'serve the coordinator\'s web dashboard (127.0.0.1, a free port), print its URL and token, and keep running after the job until Ctrl-C',
    },
    json: { type: 'boolean', description: 'print one JSON object per step on stdout, then a summary object' },
  },
  async run(values, _positionals, io) {
    const steps = intOpt(values, 'steps')!;
    const json = values.json === true;
    const say = (t: string): void => { if (!json) io.stderr(t); };
    const token = crypto.randomBytes(16).toString('hex');
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mist-demo-'));
    const env = { ...process.env, MIST_TOKEN: token };
    const children: Child[] = [];
    let conn: CoordinatorConnection | undefined;
    let jobId: string | undefined;
    let interrupted = false;
    /** 130 after SIGINT, 143 after SIGTERM (128 + the signal number, the shells' convention). */
    let signalCode = 130;
    // SIGINT (Ctrl-C) and SIGTERM (kill, a supervisor) alike: cancel the job, stop the coordinator,
    // the agents and their workers, and remove the state directory before exiting.
    const onSignal = (signal: NodeJS.Signals): void => {
      if (interrupted) return;
      interrupted = true;
      signalCode = signal === 'SIGTERM' ? 143 : 130;
      say(`\n${signal}: cancelling the job and stopping the coordinator and agents\n`);
      const cancelled = conn && jobId ? conn.cancel(jobId, `demo interrupted (${signal})`).catch(() => undefined) : Promise.resolve();
      void cancelled.then(() => stopAll(children));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      say('starting a coordinator on 127.0.0.1 ...\n');
      const metricsArgs = values.metrics === true ? ['--metrics-listen', '127.0.0.1:0'] : [];
      const dashboardArgs = values.dashboard === true ? ['--http-listen', '127.0.0.1:0'] : [];
      let dashboardUrl: string | undefined;
      const metricsUrls: Record<string, string> = {};
      const metricsSeen = new Set<string>();
      let announceMetrics: (() => void) | null = null;
      const noteMetrics = (name: string) => (line: string): void => {
        const d = /^coordinator dashboard on (http:\/\/\S+)$/.exec(line);
        if (d) dashboardUrl = d[1];
        const m = /metrics on (http:\/\/\S+)$/.exec(line);
        if (!m) return;
        metricsUrls[name] = m[1];
        metricsSeen.add(name);
        announceMetrics?.();
      };
      const coord = await startMist('coordinator', ['coordinator', '--listen', '127.0.0.1:0', '--state', stateDir, '--heartbeat-timeout', '30', ...metricsArgs, ...dashboardArgs],
        /^coordinator listening on (\S+)$/, env, noteMetrics('coordinator'));
      children.push(coord.child);
      const address = coord.match[1];
      for (const name of ['demo-host-a', 'demo-host-b']) {
        const first = await freePort();
        const agent = await startMist(name, ['agent', '--coordinator', address, '--cpu-devices', '2', '--address', '127.0.0.1',
          '--host-name', name, '--worker-ports', `${first}:16`, ...metricsArgs], /^agent (\S+) registered$/, env, noteMetrics(name));
        children.push(agent.child);
        say(`agent ${name} registered with 2 CPU devices\n`);
      }
      if (values.metrics === true) {
        // Each process prints its endpoint right after it is ready: wait for the three lines.
        await new Promise<void>((resolve) => {
          announceMetrics = (): void => { if (metricsSeen.size === 3) resolve(); };
          announceMetrics();
        });
        if (json) io.stdout(JSON.stringify({ metrics: metricsUrls }) + '\n');
        else for (const [name, url] of Object.entries(metricsUrls)) say(`metrics of ${name}: ${url}\n`);
      }
      if (dashboardUrl !== undefined) {
        // The coordinator prints the dashboard's line before its readiness line: it is known by now.
        if (json) io.stdout(JSON.stringify({ dashboard: { url: dashboardUrl, token } }) + '\n');
        else io.stdout(`dashboard: ${dashboardUrl}  (log in with the token ${token})\n`);
      }
      say('measuring this host (smoke-sized profile) ...\n');
      const profile = await profileHost({ quick: true, grid: SMOKE_GRID });
      conn = new CoordinatorConnection(address, { token });
      const model = getModel('gpt-tiny');
      const job = await conn.submit({
        name: 'demo', model: { name: model.name }, trainingJson: JSON.stringify({ globalBatch: 16, seqLen: 64 }),
        tune: { space: 'SEARCH_SPACE_MIST' }, profileJson: JSON.stringify(profile), backend: 'BACKEND_CPU',
        run: { steps, seed: 1234, learningRate: 3e-3, dataPath: 'corpus' },
      });
      jobId = job.id;
      say(`submitted job ${job.id}: tune gpt-tiny for 2 agents x 2 CPU devices, then train ${steps} steps on the shipped corpus\n`);
      const bar = json ? undefined : new ProgressBar(io, 'training', steps);
      let planShown = false;
      let predictedS: number | undefined;
      const stepTimes: number[] = [];
      let firstLoss: number | undefined;
      let lastLoss: number | undefined;
      let lastStep = 0;
      let state = '';
      let message = '';
      try {
        for await (const e of conn.watch(job.id, { replay: true })) {
          if (e.state) {
            state = e.state.state;
            message = e.state.message;
            if (state === 'JOB_STATE_RUNNING' && !planShown) {
              planShown = true;
              const j = await conn.get(job.id);
              const plan = parsePlan(JSON.parse(j.planJson), { model });
              predictedS = j.predicted?.iterationTime;
              say(`plan (predicted ${predictedS !== undefined ? `${formatSeconds(predictedS)}/iteration` : 'n/a'}):\n${describePlan(plan)}`);
            }
          }
          const m = e.worker?.metrics;
          if (m && m.loss !== undefined && m.step > lastStep) {
            lastStep = m.step;
            firstLoss ??= m.loss;
            lastLoss = m.loss;
            stepTimes.push(m.stepTime);
            const timing = `${formatSeconds(m.stepTime)}/step${predictedS !== undefined ? ` (predicted ${formatSeconds(predictedS)})` : ''}`;
            if (json) io.stdout(JSON.stringify({ step: m.step, loss: m.loss, tokensPerS: m.tokensPerSecond, stepTimeS: m.stepTime }) + '\n');
            else bar!.update(m.step, `loss ${m.loss.toFixed(3)}  ${Math.round(m.tokensPerSecond)} tok/s  ${timing}`);
          }
        }
      } catch (err) {
        // After Ctrl-C the coordinator goes away under the watch: that is the expected end.
        if (interrupted) return signalCode;
        throw err;
      }
      if (interrupted) return signalCode;
      if (bar && lastStep === steps) bar.done();
      const final = await conn.get(job.id);
      const ok = final.state === 'JOB_STATE_SUCCEEDED';
      const measured = measuredStepTime(stepTimes);
      if (json) {
        io.stdout(JSON.stringify({
          job: final.id, state: final.state, plan: JSON.parse(final.planJson || 'null'), firstLoss, finalLoss: lastLoss,
          uniformLoss: Math.log(model.vocab), predictedIterationS: predictedS ?? null, measuredIterationS: measured?.seconds ?? null,
        }) + '\n');
      } else if (ok) {
        io.stdout(`job ${final.id} succeeded: gpt-tiny loss ${firstLoss?.toFixed(3)} -> ${lastLoss?.toFixed(3)} nats over ${lastStep} steps ` +
          `(uniform baseline ln(256) = ${Math.log(model.vocab).toFixed(3)})\n`);
        if (measured) io.stdout(`step time: ${stepTimeComparison(measured.seconds, predictedS)}; median of steps ${measured.steps}\n`);
      } else {
        io.stderr(`job ${final.id} ended ${state.replace('JOB_STATE_', '').toLowerCase()}: ${final.message || message}\n`);
      }
      if (dashboardUrl !== undefined && !interrupted) {
        say(`the dashboard stays up with the finished job at ${dashboardUrl}; Ctrl-C to stop\n`);
        await new Promise<void>((resolve) => {
          const done = (): void => resolve();
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
        return signalCode;
      }
      return ok ? 0 : 1;
    } catch (err) {
      // A signal during start-up stops the children under the steps still running: not an error.
      if (interrupted) return signalCode;
      throw err;
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      conn?.close();
      say('stopping the agents and the coordinator ...\n');
      await stopAll(children);
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  },
};
