// The 1F1B schedule the executor runs lives in core (pipeline-schedule.ts), so that the plan
// pictures and the executor draw and run one and the same order; re-exported here for the runtime.
export { type CommOp, maxInFlight, oneFOneBSchedule, type ScheduleShape, type ScheduleStep } from '@mist/core';
