// The live figures of the jobs the dashboard shows, collected from the coordinator's WatchJob
// stream (replayed from the start, with logs): the loss, tokens/s and step-time series, each
// stage's latest measured step time, compute time and device memory peak, and the last log lines.
// One watch per job, started when the job is first viewed; it ends with the job.
import { type CoordinatorConnection } from '@mist/coordinator';

export interface SeriesPoint {
  step: number;
  loss: number;
  tokensPerS: number;
  stepTimeS: number;
}

export interface StageMeasurement {
  stage: number;
  /** Median over the stage's ranks' last reports (up to 20). */
  stepTimeS: number;
  computeTimeS: number;
  /** Largest device-memory peak any rank of the stage reported. */
  deviceMemoryBytes: number | null;
  reports: number;
}

export interface LogEntry {
  /** Index in the job's log (for `since`). */
  seq: number;
  time: number;
  rank: number;
  stream: string;
  text: string;
}

const MAX_LOG_LINES = 5000;
const STAGE_WINDOW = 20;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

class JobSeries {
  points: SeriesPoint[] = [];
  logs: LogEntry[] = [];
  logSeq = 0;
  stages = new Map<number, { stepTimes: number[]; computeTimes: number[]; memory: number | null; reports: number }>();
  watching = false;
  /** The stream ended with the job: everything is here, no need to watch again. */
  complete = false;
  error: string | null = null;

  reset(): void {
    this.points = [];
    this.logs = [];
    this.logSeq = 0;
    this.stages.clear();
  }
}

export class JobSeriesStore {
  private readonly jobs = new Map<string, JobSeries>();
  private closed = false;

  constructor(private readonly conn: CoordinatorConnection) {}

  /** Starts watching the job unless it is watched or its stream already ended with the job (again after the stream broke). */
  ensure(jobId: string): void {
    let s = this.jobs.get(jobId);
    if (!s) this.jobs.set(jobId, (s = new JobSeries()));
    if (s.watching || s.complete || this.closed) return;
    s.watching = true;
    s.error = null;
    s.reset();
    void this.follow(jobId, s);
  }

  private async follow(jobId: string, s: JobSeries): Promise<void> {
    try {
      for await (const e of this.conn.watch(jobId, { replay: true, includeLogs: true })) {
        const w = e.worker;
        if (!w) continue;
        if (w.metrics) {
          const m = w.metrics;
          const st = s.stages.get(m.stage) ?? { stepTimes: [], computeTimes: [], memory: null, reports: 0 };
          st.stepTimes = [...st.stepTimes, m.stepTime].slice(-STAGE_WINDOW);
          st.computeTimes = [...st.computeTimes, m.computeTime].slice(-STAGE_WINDOW);
          // The device's whole peak: "device" in common.proto's words, "total" as the executor's pools name it.
          const device = m.memoryPeaks.find((p) => p.pool === 'device') ?? m.memoryPeaks.find((p) => p.pool === 'total');
          if (device) st.memory = Math.max(st.memory ?? 0, Number(device.bytes));
          st.reports++;
          s.stages.set(m.stage, st);
          const step = Number(m.step);
          const last = s.points[s.points.length - 1];
          if (m.loss !== undefined && m.loss !== null && (!last || step > last.step)) {
            s.points.push({ step, loss: m.loss, tokensPerS: m.tokensPerSecond, stepTimeS: m.stepTime });
          }
        } else if (w.log) {
          s.logs.push({ seq: s.logSeq++, time: w.time, rank: w.rank, stream: String(w.log.stream).replace('LOG_STREAM_', '').toLowerCase(), text: w.log.text });
          if (s.logs.length > MAX_LOG_LINES) s.logs.splice(0, s.logs.length - MAX_LOG_LINES);
        }
      }
      s.complete = true;
    } catch (err) {
      s.error = (err as Error).message;
    } finally {
      s.watching = false;
    }
  }

  /** Series points after `sinceStep`, log lines from `sinceLog`, and the per-stage measurements. */
  read(jobId: string, sinceStep: number, sinceLog: number): { points: SeriesPoint[]; logs: LogEntry[]; nextLog: number; stages: StageMeasurement[]; error: string | null } {
    const s = this.jobs.get(jobId);
    if (!s) return { points: [], logs: [], nextLog: 0, stages: [], error: null };
    return {
      points: s.points.filter((p) => p.step > sinceStep),
      logs: s.logs.filter((l) => l.seq >= sinceLog),
      nextLog: s.logSeq,
      stages: [...s.stages.entries()].sort((a, b) => a[0] - b[0]).map(([stage, st]) => ({
        stage, stepTimeS: median(st.stepTimes), computeTimeS: median(st.computeTimes), deviceMemoryBytes: st.memory, reports: st.reports,
      })),
      error: s.error,
    };
  }

  close(): void {
    this.closed = true;
  }
}
