// `mist rm JOB...`: deletes finished jobs from the coordinator: their record, history and log files.
import { type Command } from '../cli/command';
import { CONNECTION_OPTIONS, withConnection } from './status';

export const rmCommand: Command = {
  name: 'rm',
  summary: 'remove finished jobs from the coordinator (record, history and logs); a running job must be cancelled first',
  usage: 'mist rm JOB [JOB...] [--coordinator HOST:PORT]',
  examples: ['MIST_TOKEN=secret mist rm job-1a2b3c4d', 'mist rm job-1a2b3c4d job-5e6f7a8b --coordinator 10.0.0.1:7070 --token secret'],
  positionals: { min: 1, max: 1000, names: 'one or more job ids' },
  options: { ...CONNECTION_OPTIONS },
  async run(_values, positionals, io) {
    return withConnection(_values, async (c) => {
      let failed = 0;
      for (const id of positionals) {
        try {
          await c.remove(id);
          io.stdout(`removed ${id}\n`);
        } catch (err) {
          failed++;
          io.stderr(`mist rm: ${id}: ${(err as Error).message}\n`);
        }
      }
      return failed > 0 ? 1 : 0;
    });
  },
};
