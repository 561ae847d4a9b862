// Prometheus endpoints during a real job: a coordinator and two agents (two CPU devices each) on
// 127.0.0.1, each with --metrics-listen, run a pp=2 x dp=2 gpt-tiny job with real executor workers.
// While it trains, both endpoints are scraped over HTTP and must show live values: the job counted
// as running, the agents alive, the RPC latencies of the calls made, each rank's step, step time,
// tokens/s, loss (last stage), collective wait and memory peaks.
import { CoordinatorConnection, startCoordinator } from '@mist/coordinator';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent, type RunningAgent } from './agent';
import { cpuDevices } from './devices';
import { freePortRange } from './test/helpers';
import { follow, lastState, TOKEN, tinySpec } from './test/jobs';
import { samples, scrapeMetrics as scrape } from './test/prometheus';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const one = (text: string, name: string, labels: Record<string, string> = {}): number => {
  const s = samples(text, name, labels);
  if (s.length !== 1) throw new Error(`expected one sample of ${name}${JSON.stringify(labels)}, got ${s.length}`);
  return s[0];
};

describe('metrics endpoints during a job', () => {
  it('show the job, the agents, the RPCs and every rank\'s live training figures', async () => {
    const steps = 30;
    const coord = await startCoordinator({ listen: '127.0.0.1:0', stateDir: ':memory:', token: TOKEN, stopGraceS: 2, metricsListen: '127.0.0.1:0' });
    cleanups.push(() => coord.stop());
    expect(coord.metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const agents: RunningAgent[] = [];
    for (const host of ['host-a', 'host-b']) {
      const agent = await runAgent({
        coordinator: coord.address, token: TOKEN, deviceList: cpuDevices(2), hostName: host, address: '127.0.0.1',
        portRange: await freePortRange(16), metricsListen: '127.0.0.1:0',
      });
      cleanups.push(() => agent.stop(1));
      await agent.registered;
      agents.push(agent);
    }
    const before = await scrape(coord.metricsAddress!);
    expect(one(before, 'mist_coordinator_agents', { state: 'alive' })).toBe(2);
    expect(one(before, 'mist_coordinator_agents', { state: 'lost' })).toBe(0);
    expect(one(before, 'mist_coordinator_devices', { kind: 'cpu' })).toBe(4);
    expect(one(before, 'mist_coordinator_jobs', { state: 'running' })).toBe(0);

    const conn = new CoordinatorConnection(coord.address, { token: TOKEN });
    cleanups.push(() => conn.close());
    const job = await conn.submit(tinySpec(steps, { learningRate: 3e-3 }));
    let live: { coordinator: string; agents: string[]; step: number } | undefined;
    let scraping: Promise<void> | undefined;
    const events = await follow(conn, job.id, (e) => {
      // The first loss (rank 2 or 3, the last stage): scrape everything while the job still trains.
      const m = e.worker?.metrics;
      if (!scraping && m?.loss !== undefined && m.step >= 2) {
        scraping = (async () => {
          live = { step: m.step, coordinator: await scrape(coord.metricsAddress!), agents: await Promise.all(agents.map((a) => scrape(a.metricsAddress!))) };
        })();
      }
    });
    await scraping;
    expect(lastState(events)).toMatchObject({ state: 'JOB_STATE_SUCCEEDED' });
    expect(live).toBeDefined();
    const { coordinator, agents: agentPages } = live!;
    expect(one(coordinator, 'mist_coordinator_jobs', { state: 'running' })).toBe(1);
    expect(one(coordinator, 'mist_coordinator_queue_length')).toBe(0);
    expect(one(coordinator, 'mist_coordinator_workers')).toBeGreaterThanOrEqual(0);
    // The submission went through the RPC observer: one OK SubmitJob, its latency in the histogram.
    expect(one(coordinator, 'mist_coordinator_rpc_calls_total', { method: 'mist.v1.Coordinator/SubmitJob', code: 'OK' })).toBe(1);
    expect(one(coordinator, 'mist_coordinator_rpc_duration_seconds_count', { method: 'mist.v1.Coordinator/SubmitJob', code: 'OK' })).toBe(1);
    expect(one(coordinator, 'mist_coordinator_rpc_duration_seconds_sum', { method: 'mist.v1.Coordinator/SubmitJob', code: 'OK' })).toBeGreaterThan(0);
    expect(one(coordinator, 'mist_coordinator_rpc_calls_total', { method: 'mist.v1.AgentControl/Register', code: 'OK' })).toBe(2);
    expect(one(coordinator, 'mist_coordinator_rpc_calls_total', { method: 'mist.v1.AgentControl/ReportWorkerEvents', code: 'OK' })).toBeGreaterThan(0);

    // Each agent runs two ranks (one stage's dp=2): its page shows both, with live figures.
    const ranksSeen: number[] = [];
    for (const page of agentPages) {
      expect(one(page, 'mist_agent_devices', { kind: 'cpu' })).toBe(2);
      expect(one(page, 'mist_agent_workers')).toBe(2);
      expect(one(page, 'mist_agent_worker_starts_total')).toBe(2);
      expect(samples(page, 'mist_agent_info').length).toBe(1);
      const ranks = samples(page, 'mist_agent_rank_step', { job: job.id }).length;
      expect(ranks).toBe(2);
      for (const rank of ['0', '1', '2', '3']) {
        const step = samples(page, 'mist_agent_rank_step', { job: job.id, rank });
        if (step.length === 0) continue;
        ranksSeen.push(Number(rank));
        expect(step[0]).toBeGreaterThanOrEqual(1);
        expect(step[0]).toBeLessThan(steps);
        expect(one(page, 'mist_agent_rank_step_seconds', { job: job.id, rank })).toBeGreaterThan(0);
        expect(one(page, 'mist_agent_rank_tokens_per_second', { job: job.id, rank })).toBeGreaterThan(0);
        expect(one(page, 'mist_agent_rank_compute_seconds', { job: job.id, rank })).toBeGreaterThan(0);
        // Pipeline send/recv and the dp all-reduce go through the collectives: every rank waits on some.
        expect(one(page, 'mist_agent_rank_collective_wait_seconds', { job: job.id, rank })).toBeGreaterThan(0);
        expect(samples(page, 'mist_agent_rank_memory_peak_bytes', { job: job.id, rank }).some((b) => b > 0)).toBe(true);
        // Only the last stage (ranks 2 and 3) computes the loss: ln(256) ~ 5.5 nats at the start.
        const loss = samples(page, 'mist_agent_rank_loss', { job: job.id, rank });
        if (Number(rank) >= 2) {
          expect(loss).toHaveLength(1);
          expect(loss[0]).toBeGreaterThan(1);
          expect(loss[0]).toBeLessThan(8);
        } else expect(loss).toHaveLength(0);
      }
      expect(one(page, 'mist_agent_steps_total')).toBeGreaterThanOrEqual(1);
      expect(one(page, 'mist_agent_step_time_seconds_count')).toBe(one(page, 'mist_agent_steps_total'));
    }
    expect(ranksSeen.sort()).toEqual([0, 1, 2, 3]);

    // After the job: counted as succeeded, the workers gone with exit code 0.
    const after = await scrape(coord.metricsAddress!);
    expect(one(after, 'mist_coordinator_jobs', { state: 'succeeded' })).toBe(1);
    expect(one(after, 'mist_coordinator_jobs', { state: 'running' })).toBe(0);
    for (const a of agents) {
      const page = await scrape(a.metricsAddress!);
      expect(one(page, 'mist_agent_worker_exits_total', { result: 'ok' })).toBe(2);
      expect(one(page, 'mist_agent_workers')).toBe(0);
      expect(one(page, 'mist_agent_steps_total')).toBe(2 * steps);
    }
    const notFound = await fetch(`http://${coord.metricsAddress}/other`);
    expect(notFound.status).toBe(404);
  });
});
