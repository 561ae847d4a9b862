import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobState, PACKAGE_ROOT, PROTO_PACKAGE, protoFiles, protosDir, protoServiceNames, SERVICE_NAMES,
  serviceDefinition } from './index';

describe('the protos', () => {
  it('are found from the package root (the same from src/ and dist/)', () => {
    expect(path.basename(PACKAGE_ROOT)).toBe('rpc');
    expect(protosDir()).toBe(path.resolve(PACKAGE_ROOT, '../../protos'));
    expect(protoFiles()).toEqual(['agent', 'analyzer', 'common', 'coordinator', 'profiler', 'tuner']
      .map((f) => `mist/v1/${f}.proto`));
  });

  it('define exactly the services the helpers know, all in package mist.v1', () => {
    expect(protoServiceNames().sort()).toEqual(SERVICE_NAMES.map((n) => `${PROTO_PACKAGE}.${n}`).sort());
  });

  it('give each service the methods of its contract', () => {
    const methods = (name: (typeof SERVICE_NAMES)[number]) => Object.keys(serviceDefinition(name)).sort();
    expect(methods('Coordinator')).toEqual(['CancelJob', 'DeleteJob', 'GetJob', 'ListAgents', 'ListJobs', 'SubmitJob', 'WatchJob']);
    expect(methods('AgentControl')).toEqual(['Heartbeat', 'Register', 'ReportWorkerEvents', 'WatchAssignments']);
    expect(methods('Tuner')).toEqual(['Tune']);
    expect(methods('Analyzer')).toEqual(['Analyze']);
    expect(methods('Profiler')).toEqual(['Profile']);
    expect(serviceDefinition('Coordinator').WatchJob).toMatchObject({ requestStream: false, responseStream: true });
    expect(serviceDefinition('AgentControl').WatchAssignments.responseStream).toBe(true);
    expect(serviceDefinition('Analyzer').Analyze).toMatchObject({ requestStream: false, responseStream: false });
  });

  it('have generated types that are up to date (enums as strings)', () => {
    const stamp = path.join(PACKAGE_ROOT, 'src/generated/.stamp');
    expect(fs.existsSync(stamp)).toBe(true);
    expect(Object.values(JobState)).toContain('JOB_STATE_CANCELLING');
  });
});
