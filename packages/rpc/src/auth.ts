// Shared-token authentication: every call carries `authorization: Bearer <token>` metadata; the
// server checks it before any handler runs (unary and streaming alike) and refuses a missing or
// wrong token with UNAUTHENTICATED. Works with and without TLS (grpc-js refuses call credentials
// on insecure channels, so the client side is an interceptor, not CallCredentials).
import * as crypto from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

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

/** Server interceptor that lets a call reach its handler only with the right token. */
export function serverAuthInterceptor(token: string): grpc.ServerInterceptor {
  checkToken(token);
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (metadataHasToken(metadata, token)) {
              mdNext(metadata);
            } else {
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: 'missing or wrong token (expected metadata "authorization: Bearer <token>")',
                metadata: new grpc.Metadata(),
              });
            }
          },
        });
      },
    });
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
