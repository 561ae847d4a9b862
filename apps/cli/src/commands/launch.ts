// `mist launch job.json`: submits a job (prints its id), then follows it with a progress bar until
// it ends, unless --detach. `mist launch --resume JOB` resumes an interrupted or failed job from
// its last complete checkpoint.
import { CoordinatorCallError, loadJobFile } from '@mist/coordinator';
import { status as grpcStatus } from '@mist/rpc';
import { type Command, JSON_OPTION, stringOpt, UsageError } from '../cli/command';
import { followJob } from './logs';
import { CONNECTION_OPTIONS, describeJob, withConnection } from './status';

export const launchCommand: Command = {
  name: 'launch',
  summary: 'submit a job file to the coordinator (or resume a job) and follow it until it ends',
  usage: 'mist launch JOB.json [--detach] [--no-queue] [--logs] [--json] [--coordinator HOST:PORT] [--token TOKEN] | mist launch --resume JOB',
  examples: [
    'MIST_TOKEN=secret mist launch job.json',
    'mist launch job.json --detach --coordinator 10.0.0.1:7070 --token secret',
    'mist launch --resume job-1a2b3c4d',
    'mist profile --quick --out host.json   # CPU agents: tuning needs a measured profile (GPU agents: "cluster": "1x8-l4" instead)',
    'job.json: {"model": "gpt-tiny", "training": {"globalBatch": 8, "seqLen": 64}, "plan": "tune", "profile": "host.json", "run": {"steps": 200, "data": "corpus"}}',
  ],
  positionals: { min: 0, max: 1, names: 'one job file' },
  options: {
    resume: { type: 'string', valueName: 'JOB', description: 'resume this interrupted or failed job from its last checkpoint' },
    detach: { type: 'boolean', description: 'print the job id and return at once' },
    'no-queue': { type: 'boolean', description: 'refuse the job when its devices are busy now instead of queueing it (also "queue": false in the job file)' },
    logs: { type: 'boolean', description: 'also print the workers\' log lines while following' },
    ...CONNECTION_OPTIONS,
    ...JSON_OPTION,
  },
  async run(values, positionals, io) {
    const resume = stringOpt(values, 'resume');
    if (resume && positionals[0]) throw new UsageError('give a job file or --resume JOB, not both');
    if (!resume && !positionals[0]) throw new UsageError('expects a job file (or --resume JOB)');
    // The job file is checked before anything is sent: a bad field fails here, naming it.
    const spec = positionals[0] ? loadJobFile(positionals[0]) : null;
    if (spec && values['no-queue'] === true) spec.noQueue = true;
    return withConnection(values, async (c) => {
      let job;
      try {
        job = spec ? await c.submit(spec) : await c.resume(resume!);
      } catch (err) {
        // The coordinator's own checks of the job (a field named): the caller's to fix, exit 2 as the CLI's checks.
        if (err instanceof CoordinatorCallError && err.code === grpcStatus.INVALID_ARGUMENT) {
          io.stderr(`mist launch: ${err.message}\n`);
          return 2;
        }
        throw err;
      }
      if (values.detach) {
        io.stdout(values.json ? `${JSON.stringify(job, null, 2)}\n` : `${job.id}\n`);
        return 0;
      }
      if (!values.json) io.stdout(`${job.id}\n`);
      const steps = job.spec?.run?.steps ?? 0;
      let last;
      try {
        last = await followJob(c, job.id, io, { logs: values.logs === true, progressSteps: steps > 0 ? steps : undefined });
      } catch (err) {
        throw new Error(`${(err as Error).message}; the job goes on: follow it with \`mist logs -f ${job.id}\``);
      }
      const final = await c.get(job.id);
      io.stdout(values.json ? `${JSON.stringify(final, null, 2)}\n` : describeJob(final));
      return last === 'JOB_STATE_SUCCEEDED' ? 0 : 1;
    });
  },
};
