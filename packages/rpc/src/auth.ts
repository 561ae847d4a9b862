// Shared-token authentication: every call carries `authorization: Bearer <token>` metadata; the
// server checks it before any handler runs (unary and streaming alike) and refuses a missing or
// wrong token with UNAUTHENTICATED (and throttles a peer that keeps trying). Works with and without
// TLS (grpc-js refuses call credentials on insecure channels, so the client side is an interceptor,
// not CallCredentials).
import * as crypto from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AuthThrottle, type AuthThrottleOptions, peerHost } from './auth-throttle';

export const AUTH_METADATA_KEY = 'authorization';
const BEARER = 'Bearer ';

/** Throws unless the token is usable: non-empty, and printable ASCII (it travels in an HTTP/2 header). */
export function checkToken(token: string): void {
  if (typeof token !== 'string' || token.length === 0) throw new Error('an RPC token is required (a non-empty string)');
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error('the RPC token must be printable ASCII without spaces');
}

function digest(text: string): Buffer {
  return crypto.createHash('sha256').update(text, 'utf8').digest();
}

/** True when the metadata holds `authorization: Bearer <token>`; compared in constant time. */
export function metadataHasToken(metadata: grpc.Metadata, token: string): boolean {
  const values = metadata.get(AUTH_METADATA_KEY);
  if (values.length !== 1 || typeof values[0] !== 'string' || !values[0].startsWith(BEARER)) return false;
  // Equal-length digests, so timingSafeEqual tells nothing about the token's length or prefix.
  return crypto.timingSafeEqual(digest(values[0].slice(BEARER.length)), digest(token));
}

/** The service whose calls are the agents' (they need the agent token when the server has one). */
export const AGENT_SERVICE_PREFIX = '/mist.v1.AgentControl/';

/** Trailer of a throttled call: milliseconds to wait before retrying (gRPC's retry pushback, gRFC A6). */
export const RETRY_PUSHBACK_KEY = 'grpc-retry-pushback-ms';

/**
 * Server interceptor that lets a call reach its handler only with the right token. With
 * `agentToken`, agents and users are told apart: AgentControl calls need the agent token and every
 * other call the user token, so neither can act as the other. Refused calls are logged (at most once
 * per peer per interval; never the token) and a peer that fails too often is throttled: its calls
 * get RESOURCE_EXHAUSTED with a retry hint, unchecked, until its back-off ends (see auth-throttle.ts).
 * Calls to `openServices` (fully qualified names) are let through without a token.
 */
export function serverAuthInterceptor(token: string, agentToken?: string, throttleOptions: Partial<AuthThrottleOptions> = {},
  openServices: readonly string[] = []): grpc.ServerInterceptor {
  checkToken(token);
  if (agentToken !== undefined) {
    checkToken(agentToken);
    if (agentToken === token) throw new Error('the agent token must differ from the user token (or be left unset)');
  }
  const throttle = new AuthThrottle(throttleOptions);
  const open = openServices.map((name) => `/${name}/`);
  return (method, call) => {
    // Services that need no token (the health service) go straight to their handlers.
    if (open.some((prefix) => method.path.startsWith(prefix))) return new grpc.ServerInterceptingCall(call);
    const agentCall = method.path.startsWith(AGENT_SERVICE_PREFIX);
    const wanted = agentToken !== undefined && agentCall ? agentToken : token;
    const which = agentToken === undefined ? 'token' : agentCall ? 'agent token' : 'user token';
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const peer = call.getPeer();
            const verdict = throttle.verdict(peer);
            if (verdict.throttled) {
              const waitMs = Math.ceil(verdict.retryAfterS * 1000);
              const trailers = new grpc.Metadata();
              trailers.set(RETRY_PUSHBACK_KEY, String(waitMs));
              call.sendStatus({
                code: grpc.status.RESOURCE_EXHAUSTED,
                details: `too many calls with a missing or wrong token from ${peerHost(peer)}: retry in ${(waitMs / 1000).toFixed(1)} s`,
                metadata: trailers,
              });
            } else if (metadataHasToken(metadata, wanted)) {
              mdNext(metadata);
            } else {
              throttle.refused(peer, method.path, which);
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: `missing or wrong ${which} (expected metadata "authorization: Bearer <token>")`,
                metadata: new grpc.Metadata(),
              });
            }
          },
        });
      },
    });
  };
}

/** Client interceptor that adds the token to every call's metadata. */
export function clientAuthInterceptor(token: string): grpc.Interceptor {
  checkToken(token);
  const value = `${BEARER}${token}`;
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set(AUTH_METADATA_KEY, value);
        next(metadata, listener);
      },
    });
}
