// `mist agent`: registers this host's devices with the coordinator and runs the workers it assigns,
// until Ctrl-C (which stops the workers).
import { AGENT_CLI_OPTIONS, agentLoggerFromArgs, agentOptionsFromArgs, runAgent, type RunningAgent } from '@mist/app-agent';
import { type Command, type OptionSpec, UsageError } from '../cli/command';

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run an agent: offer this host\'s GPUs (or N CPU devices) to the coordinator and run its workers',
  usage: 'mist agent --coordinator HOST:PORT [--cpu-devices N | --devices 0,1] [--token TOKEN] [--address HOST]',
  examples: [
    'MIST_TOKEN=secret mist agent --coordinator 10.0.0.1:7070',
    'mist agent --coordinator 127.0.0.1:7070 --cpu-devices 2 --address 127.0.0.1 --token secret',
    'MIST_AGENT_TOKEN=secret mist agent --coordinator 10.0.0.1:7070 --metrics-listen 0.0.0.0:9465 --log-format json',
  ],
  options: AGENT_CLI_OPTIONS as Record<string, OptionSpec>,
  async run(values, _positionals, io) {
    let options;
    let agent: RunningAgent | undefined;
    let logger;
    try {
      options = agentOptionsFromArgs(values);
      logger = agentLoggerFromArgs(values, (l) => io.stderr(`${l}\n`), () => agent?.agentId ?? null);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    agent = await runAgent({ ...options, log: (l) => logger.line(l) });
    if (agent.metricsAddress) io.stdout(`agent metrics on http://${agent.metricsAddress}/metrics\n`);
    const signal = await Promise.race([
      agent.registered.then((id) => {
        io.stdout(`agent ${id} registered\n`);
        return new Promise<string>(() => undefined);
      }),
      new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      }),
    ]);
    logger.line(`${signal}: stopping the workers`);
    await agent.stop();
    return 0;
  },
};
