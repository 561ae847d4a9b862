// Who may see the dashboard: whoever holds the coordinator's user token (the agents' token is not
// accepted). A browser logs in once with a form and gets a random session id in an HttpOnly,
// SameSite=Strict cookie; scripts send `Authorization: Bearer TOKEN`. Sessions live in memory (a
// restart logs everyone out) and expire after `ttlS` seconds.
import * as crypto from 'node:crypto';
import type * as http from 'node:http';

export const SESSION_COOKIE = 'mist_session';

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(presented).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

/** The token of an `Authorization: Bearer TOKEN` header, or null. */
export function bearerToken(req: http.IncomingMessage): string | null {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1].trim() : null;
}

export class DashboardAuth {
  private readonly sessions = new Map<string, number>();

  constructor(private readonly token: string, private readonly ttlS = 12 * 3600) {}

  /** A new session for a correct token (its id for the cookie), or null. */
  login(presented: string): string | null {
    if (!tokenMatches(presented, this.token)) return null;
    const id = crypto.randomBytes(24).toString('base64url');
    this.sessions.set(id, Date.now() + this.ttlS * 1000);
    return id;
  }

  logout(req: http.IncomingMessage): void {
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (id) this.sessions.delete(id);
  }

  /** True when the request carries a live session cookie or the token as a bearer. */
  allowed(req: http.IncomingMessage): boolean {
    const bearer = bearerToken(req);
    if (bearer !== null) return tokenMatches(bearer, this.token);
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (!id) return false;
    const until = this.sessions.get(id);
    if (until === undefined) return false;
    if (until < Date.now()) {
      this.sessions.delete(id);
      return false;
    }
    return true;
  }

  cookie(id: string, secure: boolean): string {
    return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${this.ttlS}${secure ? '; Secure' : ''}`;
  }

  static clearCookie(): string {
    return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
  }
}
