// Test helper: every rank of a plan in this process (now public as launch/in-process.ts).
export { type InProcessRun, localWorld, runInProcess } from '../../launch/in-process';
