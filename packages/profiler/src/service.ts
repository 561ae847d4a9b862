// The Profiler service's work (protos/mist/v1/profiler.proto, rpc Profile): the agent measures its
// host and answers with the profile JSON. The gRPC wiring lives with the services (@mist/rpc).
import { profileHost } from './profile-host';

/** Measures this host (quick or full) and returns the HardwareProfile as JSON. */
export async function profileRequestHandler(request: { quick: boolean }): Promise<string> {
  const profile = await profileHost({ quick: request.quick });
  return JSON.stringify(profile);
}
