// The Prometheus endpoints of the coordinator and the agents show live values while
// `mist demo --metrics` trains (a real demo process of the built CLI, `npm run build`, scraped over
// HTTP between two training steps).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { describe, expect, it } from 'vitest';
import { samples, scrapeMetrics as scrape } from '../../../agent/src/test/prometheus';

const MIST = path.resolve(__dirname, '../../bin/mist.js');

describe('mist demo --metrics', () => {
  it('serves live metrics from the coordinator and both agents while the job trains', async () => {
    const demo = spawn(process.execPath, [MIST, 'demo', '--steps', '60', '--metrics', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    let stderr = '';
    demo.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    let urls: Record<string, string> | null = null;
    // Scrape once a few steps have been reported (the agents have seen metrics by then).
    const scraped = new Promise<{ coordinator: string; agents: string[] }>((resolve, reject) => {
      let done = false;
      readline.createInterface({ input: demo.stdout! }).on('line', (line) => {
        const j = JSON.parse(line) as { metrics?: Record<string, string>; step?: number };
        if (j.metrics) urls = j.metrics;
        if (!done && urls && j.step !== undefined && j.step >= 5) {
          done = true;
          const u = urls;
          Promise.all([scrape(u.coordinator), scrape(u['demo-host-a']), scrape(u['demo-host-b'])])
            .then(([coordinator, a, b]) => resolve({ coordinator, agents: [a, b] }), reject);
        }
      });
      void exited.then((code) => { if (!done) reject(new Error(`demo exited with ${code} before scraping:\n${stderr}`)); });
    });
    const m = await scraped;
    expect(await exited).toBe(0);
    expect(Object.keys(urls!).sort()).toEqual(['coordinator', 'demo-host-a', 'demo-host-b']);
    expect(samples(m.coordinator, 'mist_coordinator_jobs', { state: 'running' })[0]).toBe(1);
    expect(samples(m.coordinator, 'mist_coordinator_agents', { state: 'alive' })[0]).toBe(2);
    expect(samples(m.coordinator, 'mist_coordinator_rpc_calls_total')[0]).toBeGreaterThan(0);
    for (const agent of m.agents) {
      expect(samples(agent, 'mist_agent_workers')[0]).toBeGreaterThan(0);
      expect(samples(agent, 'mist_agent_steps_total')[0]).toBeGreaterThan(0);
      expect(samples(agent, 'mist_agent_step_time_seconds_count')[0]).toBeGreaterThan(0);
    }
  }, 120_000);
});
