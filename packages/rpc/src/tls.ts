// Optional mutual TLS: each side presents a certificate chain and checks the other's against a
// root (CA) certificate. PEM buffers, as read from files.
import * as grpc from '@grpc/grpc-js';

export interface TlsOptions {
  /** PEM of the CA that signed the peer's certificate. */
  rootCert: Buffer;
  /** PEM of this side's certificate chain. */
  certChain: Buffer;
  /** PEM of this side's private key. */
  privateKey: Buffer;
}

export interface ClientTlsOptions extends TlsOptions {
  /** Name to check the server's certificate against, when it differs from the address's host. */
  serverName?: string;
}

/** Server credentials: mutual TLS that refuses clients without a certificate signed by rootCert; insecure without TLS. */
export function serverCredentials(tls?: TlsOptions): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(tls.rootCert, [{ cert_chain: tls.certChain, private_key: tls.privateKey }], true);
}

export function channelCredentials(tls?: ClientTlsOptions): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.rootCert, tls.privateKey, tls.certChain);
}

/** Channel options TLS needs (the server name override), to merge into the client's. */
export function tlsChannelOptions(tls?: ClientTlsOptions): grpc.ChannelOptions {
  return tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {};
}
