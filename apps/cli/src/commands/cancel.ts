// `mist cancel JOB`: stops the job's workers everywhere.
import { type Command, JSON_OPTION, stringOpt } from '../cli/command';
import { CONNECTION_OPTIONS, shortState, withConnection } from './status';

export const cancelCommand: Command = {
  name: 'cancel',
  summary: 'cancel a job: its workers get SIGTERM, then SIGKILL after the grace period',
  usage: 'mist cancel JOB [--reason TEXT] [--coordinator HOST:PORT] [--json]',
  examples: ['MIST_TOKEN=secret mist cancel job-1a2b3c4d', 'mist cancel job-1a2b3c4d --reason "wrong data" --token secret'],
  positionals: { min: 1, max: 1, names: 'one job id' },
  options: {
    reason: { type: 'string', valueName: 'TEXT', description: 'why (kept in the job\'s history)' },
    ...CONNECTION_OPTIONS,
    ...JSON_OPTION,
  },
  async run(values, positionals, io) {
    return withConnection(values, async (c) => {
      const job = await c.cancel(positionals[0], stringOpt(values, 'reason') ?? '');
      if (values.json) io.stdout(`${JSON.stringify(job, null, 2)}\n`);
      else io.stdout(`job ${job.id}: ${shortState(job.state)}${job.message ? ` — ${job.message}` : ''}\n`);
      return 0;
    });
  },
};
