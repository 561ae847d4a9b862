// `mist agent`: registers this host's devices with the coordinator and runs the workers it assigns,
// until Ctrl-C (which stops the workers).
import { AGENT_CLI_OPTIONS, agentOptionsFromArgs, runAgent } from '@mist/app-agent';
import { type Command, type OptionSpec, UsageError } from '../cli/command';

export const agentCommand: Command = {
  name: 'agent',
  summary: 'run an agent: offer this host\'s GPUs (or N CPU devices) to the coordinator and run its workers',
  usage: 'mist agent --coordinator HOST:PORT [--cpu-devices N | --devices 0,1] [--token TOKEN] [--address HOST]',
  examples: [
    'MIST_TOKEN=secret mist agent --coordinator 10.0.0.1:7070',
    'mist agent --coordinator 127.0.0.1:7070 --cpu-devices 2 --address 127.0.0.1 --token secret',
  ],
  options: AGENT_CLI_OPTIONS as Record<string, OptionSpec>,
  async run(values, _positionals, io) {
    let options;
    try {
      options = agentOptionsFromArgs(values);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const agent = await runAgent({ ...options, log: (l) => io.stderr(`[agent] ${l}\n`) });
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
    io.stderr(`[agent] ${signal}: stopping the workers\n`);
    await agent.stop();
    return 0;
  },
};
