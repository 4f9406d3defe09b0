import { AccountApiError, AccountClient, csrfFromCookie } from '../../libs/client/src/account.js';
import { DashboardApiError, DashboardClient } from '../../libs/client/src/dashboard.js';
import { ClientError, RunwayClient } from '../../libs/client/src/index.js';

/** The CSRF header a cookie session needs on unsafe requests (docs/dashboard-auth.md). */
const csrfHeaders = (): Record<string, string> => {
  const token = csrfFromCookie(document.cookie);
  return token ? { 'x-csrf-token': token } : {};
};

const origin = window.location.origin;

/** fetch with the session cookie and the CSRF header. */
const sessionFetch: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  for (const [k, v] of Object.entries(csrfHeaders())) headers.set(k, v);
  return fetch(input, { ...init, headers, credentials: 'same-origin' });
};

export const account = new AccountClient({ base: '', headers: csrfHeaders });
export const dashboard = new DashboardClient({ apiBase: '/api', headers: csrfHeaders });
/** Runway's SDK (the compatible routes mapped to job/run words); absolute base: its follow needs one. */
export const runway = new RunwayClient({ apiBase: `${origin}/api`, fetchImpl: sessionFetch });

/** An error in words: the API's own message when there is one. */
export function errorText(err: unknown): string {
  if (err instanceof AccountApiError || err instanceof DashboardApiError || err instanceof ClientError)
    return err.status === 0 ? err.detail : `${err.detail}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function errorStatus(err: unknown): number | undefined {
  if (err instanceof AccountApiError || err instanceof DashboardApiError || err instanceof ClientError)
    return err.status;
  return undefined;
}
