// `mist coordinator`: serves the Coordinator (job API) and AgentControl (agents) until Ctrl-C, and
// with --http-listen the web dashboard (apps/coordinator/src/dashboard).
import { COORDINATOR_CLI_OPTIONS, runCoordinator } from '@mist/app-coordinator';
import { type Command, type OptionSpec, stringOpt, UsageError } from '../cli/command';

export const coordinatorCommand: Command = {
  name: 'coordinator',
  summary: 'run the coordinator: agents register with it, `mist launch` submits jobs to it',
  usage: 'mist coordinator --state DIR [--listen HOST:PORT] [--token TOKEN] [--tls-cert PEM --tls-key PEM --tls-ca PEM] [--http-listen HOST:PORT]',
  examples: [
    'MIST_TOKEN=secret mist coordinator --listen 0.0.0.0:7070 --state ./mist-state',
    'mist coordinator --listen 127.0.0.1:0 --state /tmp/mist --token secret --heartbeat-timeout 5',
    'MIST_TOKEN=secret mist coordinator --state /var/lib/mist --metrics-listen 0.0.0.0:9464 --log-format json',
    'MIST_TOKEN=secret mist coordinator --state ./mist-state --http-listen 127.0.0.1:8080   # dashboard: http://127.0.0.1:8080/',
  ],
  options: COORDINATOR_CLI_OPTIONS as Record<string, OptionSpec>,
  async run(values, _positionals, io) {
    if (!stringOpt(values, 'state')) throw new UsageError('--state DIR is required (the job database lives there)');
    if (!stringOpt(values, 'token') && !process.env.MIST_TOKEN) throw new UsageError('a token is required: --token TOKEN or MIST_TOKEN');
    await runCoordinator({ values, out: (l) => io.stdout(`${l}\n`), err: (l) => io.stderr(`${l}\n`) });
    return 0;
  },
};
