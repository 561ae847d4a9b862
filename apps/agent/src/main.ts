// The agent's process entry: `node dist/main.js --coordinator HOST:PORT --cpu-devices 2`. Prints
// `agent <id> registered` once registered; stops its workers and exits on SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { runAgent, type RunningAgent } from './agent';
import { AGENT_CLI_OPTIONS, agentLoggerFromArgs, agentOptionsFromArgs } from './cli-options';

async function main(): Promise<void> {
  const options = Object.fromEntries(Object.entries(AGENT_CLI_OPTIONS).map(([k, v]) => [k, { type: v.type }]));
  const { values } = parseArgs({ args: process.argv.slice(2), options, strict: true });
  let agent: RunningAgent | undefined;
  const logger = agentLoggerFromArgs(values, (line) => process.stderr.write(`${line}\n`), () => agent?.agentId ?? null);
  const log = (line: string): void => logger.line(line);
  agent = await runAgent({ ...agentOptionsFromArgs(values), log });
  const shutdown = (signal: string): void => {
    log(`${signal}: stopping`);
    void agent.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  if (agent.metricsAddress) process.stdout.write(`agent metrics on http://${agent.metricsAddress}/metrics\n`);
  const id = await agent.registered;
  process.stdout.write(`agent ${id} registered\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`agent: ${(err as Error).message}\n`);
  process.exit(1);
});
