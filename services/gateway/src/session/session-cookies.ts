import type { Request, Response } from 'express';

export const SESSION_COOKIE = 'runway_session';
export const CSRF_COOKIE = 'runway_csrf';
export const CSRF_HEADER = 'x-csrf-token';

/** The value of one cookie of the request (no cookie-parser needed), or undefined. */
export function cookieOf(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Cookies get `Secure` when the request came over https or the public URL is https. */
export const wantsSecure = (req: Pick<Request, 'protocol'>, publicUrl: string): boolean =>
  req.protocol === 'https' || publicUrl.startsWith('https:');

interface CookieOptions {
  httpOnly: boolean;
  secure: boolean;
  path?: string;
  maxAgeSeconds?: number;
}

function cookie(name: string, value: string, o: CookieOptions): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, `Path=${o.path ?? '/'}`, 'SameSite=Lax'];
  if (o.httpOnly) parts.push('HttpOnly');
  if (o.secure) parts.push('Secure');
  if (o.maxAgeSeconds !== undefined) parts.push(`Max-Age=${o.maxAgeSeconds}`);
  return parts.join('; ');
}

function append(res: Response, value: string): void {
  const prev = res.getHeader('set-cookie');
  const list = Array.isArray(prev) ? prev : typeof prev === 'string' ? [prev] : [];
  res.setHeader('set-cookie', [...list, value]);
}

/** Set-Cookie values: the session cookie (HttpOnly) and the CSRF cookie (readable by the page's JS). */
export const sessionCookies = (secure: boolean, session: string, csrf: string): string[] => [
  cookie(SESSION_COOKIE, session, { httpOnly: true, secure }),
  cookie(CSRF_COOKIE, csrf, { httpOnly: false, secure }),
];

/** Set-Cookie values that make the browser drop both cookies. */
export const clearedSessionCookies = (secure: boolean): string[] => [
  cookie(SESSION_COOKIE, '', { httpOnly: true, secure, maxAgeSeconds: 0 }),
  cookie(CSRF_COOKIE, '', { httpOnly: false, secure, maxAgeSeconds: 0 }),
];

export function setSessionCookies(res: Response, secure: boolean, session: string, csrf: string): void {
  for (const c of sessionCookies(secure, session, csrf)) append(res, c);
}

export function clearSessionCookies(res: Response, secure: boolean): void {
  for (const c of clearedSessionCookies(secure)) append(res, c);
}

/** A short-lived HttpOnly cookie scoped to the OIDC routes (state, nonce, PKCE verifier, return path). */
export function setOidcCookie(res: Response, secure: boolean, name: string, value: string): void {
  append(res, cookie(name, value, { httpOnly: true, secure, path: '/auth/oidc', maxAgeSeconds: 600 }));
}

export function clearOidcCookie(res: Response, secure: boolean, name: string): void {
  append(res, cookie(name, '', { httpOnly: true, secure, path: '/auth/oidc', maxAgeSeconds: 0 }));
}
