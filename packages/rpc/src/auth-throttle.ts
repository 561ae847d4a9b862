// Refused-token bookkeeping of the token check: every refused call is logged,
// at most once per peer per `logIntervalS` (the others are counted into the next line), and a peer
// that fails `maxFailures` times within `windowS` is throttled: for a back-off period its calls are
// answered at once, without looking at the token, so guessing costs time and floods no log. The
// back-off doubles each time the same peer is throttled again (up to `maxBackoffS`) and starts over
// after `maxBackoffS + windowS` without a refusal. A peer is its host address without the port (each
// new connection gets a new port), so clients sharing a host (or a NAT) with a guesser wait with it;
// a call with the right token does not clear the record, or a guesser next to a healthy agent would
// never be throttled. Times come from a monotonic clock.

export interface AuthThrottleOptions {
  /** Refused calls of one peer within `windowS` that start a back-off (default 10). */
  maxFailures: number;
  /** Seconds over which refused calls are counted (default 60). */
  windowS: number;
  /** First back-off in seconds (default 5); it doubles on each new throttling of the same peer. */
  backoffS: number;
  /** Longest back-off in seconds (default 300). */
  maxBackoffS: number;
  /** Seconds between two log lines about the same peer (default 60). */
  logIntervalS: number;
  /** Where refusals are written (default: standard error, prefixed with `[rpc]`). */
  log: (line: string) => void;
  /** Monotonic seconds (default: process.hrtime); tests pass their own clock. */
  now: () => number;
}

export const DEFAULT_AUTH_THROTTLE: AuthThrottleOptions = {
  maxFailures: 10,
  windowS: 60,
  backoffS: 5,
  maxBackoffS: 300,
  logIntervalS: 60,
  log: (line) => process.stderr.write(`[rpc] ${line}\n`),
  now: () => Number(process.hrtime.bigint()) / 1e9,
};

/** Peers remembered at most; the least recently seen are forgotten first. */
const MAX_PEERS = 10_000;

interface PeerRecord {
  /** Times of the refused calls within the window (oldest first). */
  failures: number[];
  /** End of the current back-off (0: none). */
  blockedUntil: number;
  /** Back-off of the next throttling. */
  nextBackoffS: number;
  /** Time of the last throttling or refusal (the back-off growth is forgotten after a quiet maxBackoffS). */
  lastBad: number;
  /** Time of the last log line about this peer, and the refusals since that were not logged. */
  lastLog: number;
  unlogged: number;
}

/** What to do with a call: check its token, or answer at once because the peer is throttled. */
export type ThrottleVerdict = { throttled: false } | { throttled: true; retryAfterS: number };

/** The host part of a grpc-js peer string (`1.2.3.4:5678`, `::1:5678`, `unknown`). */
export function peerHost(peer: string): string {
  return peer.replace(/:\d+$/, '');
}

function checkOptions(o: AuthThrottleOptions): void {
  const positive: Array<keyof AuthThrottleOptions> = ['windowS', 'backoffS', 'maxBackoffS', 'logIntervalS'];
  for (const k of positive) {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`auth throttle: ${k} must be a positive number of seconds (got ${String(v)})`);
  }
  if (!Number.isInteger(o.maxFailures) || o.maxFailures < 1) throw new Error(`auth throttle: maxFailures must be an integer >= 1 (got ${o.maxFailures})`);
  if (o.maxBackoffS < o.backoffS) throw new Error(`auth throttle: maxBackoffS (${o.maxBackoffS}) must be at least backoffS (${o.backoffS})`);
}

export class AuthThrottle {
  private readonly o: AuthThrottleOptions;
  private readonly peers = new Map<string, PeerRecord>();

  constructor(options: Partial<AuthThrottleOptions> = {}) {
    this.o = { ...DEFAULT_AUTH_THROTTLE, ...options };
    checkOptions(this.o);
  }

  /** Before the token check: is this peer in a back-off? */
  verdict(peer: string): ThrottleVerdict {
    const rec = this.peers.get(peerHost(peer));
    if (!rec) return { throttled: false };
    const now = this.o.now();
    if (rec.blockedUntil > now) {
      rec.unlogged++;
      return { throttled: true, retryAfterS: rec.blockedUntil - now };
    }
    return { throttled: false };
  }

  /** A refused call: logs it (rate-limited) and starts a back-off when the peer has failed too often. */
  refused(peer: string, method: string, expected: string): void {
    const host = peerHost(peer);
    const now = this.o.now();
    let rec = this.peers.get(host);
    if (!rec) {
      rec = { failures: [], blockedUntil: 0, nextBackoffS: this.o.backoffS, lastBad: now, lastLog: -Infinity, unlogged: 0 };
    } else if (now - rec.lastBad > this.o.maxBackoffS + this.o.windowS) {
      rec.nextBackoffS = this.o.backoffS;
    }
    // Re-inserted so that the map's order is least recently seen first.
    this.peers.delete(host);
    this.peers.set(host, rec);
    this.prune();
    rec.lastBad = now;
    rec.failures.push(now);
    while (rec.failures.length !== 0 && rec.failures[0] <= now - this.o.windowS) rec.failures.shift();
    if (now - rec.lastLog >= this.o.logIntervalS) {
      const more = rec.unlogged === 0 ? '' : ` (+${rec.unlogged} more refused call(s) from it since the last line)`;
      this.o.log(`refused ${method} from ${host}: missing or wrong ${expected}${more}`);
      rec.lastLog = now;
      rec.unlogged = 0;
    } else {
      rec.unlogged++;
    }
    if (rec.failures.length >= this.o.maxFailures) {
      const backoff = rec.nextBackoffS;
      rec.blockedUntil = now + backoff;
      rec.nextBackoffS = Math.min(this.o.maxBackoffS, backoff * 2);
      rec.failures = [];
      this.o.log(`throttling ${host} for ${backoff} s: ${this.o.maxFailures} refused calls within ${this.o.windowS} s`);
    }
  }

  /** Peers remembered now (for tests). */
  get size(): number {
    return this.peers.size;
  }

  private prune(): void {
    while (this.peers.size > MAX_PEERS) {
      const oldest = this.peers.keys().next();
      if (oldest.done) break;
      this.peers.delete(oldest.value);
    }
  }
}
