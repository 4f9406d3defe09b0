import type { IncomingMessage } from 'node:http';

/**
 * Which dlt client is calling, for the few places where the two compatible API generations answer
 * differently on the same route (everything else is one union-shaped response both clients parse,
 * each ignoring the keys it does not know):
 * - `runtime-026`: dlt-runtime 0.26.1 (dlt 1.26), which sends `User-Agent: dlt-runtime-cli/<version>`
 *   on every API call (its log stream too);
 * - `classic`: everything else — dlt-runtime 0.20.0 (the default `python-httpx/…` agent), Runway's
 *   own CLI and clients, curl.
 * See docs/dlt-runtime-026.md ("Which client is calling").
 */
export type ClientFlavour = 'runtime-026' | 'classic';

export function clientFlavour(req: Pick<IncomingMessage, 'headers'>): ClientFlavour {
  const ua = req.headers['user-agent'] ?? '';
  return /^dlt-runtime-cli\//.test(ua) ? 'runtime-026' : 'classic';
}

/**
 * What dlt-runtime 0.26.1 reads as a job's `public_url` on `GET …/scripts/{ref}` while the job has
 * a public link. Its `publish` prints "already enabled: <public_url>" when the field is set, and
 * its `unpublish` sends the revoking DELETE only when it is set. Runway keeps only the token's hash
 * (docs/interactive.md "Public links"), so the URL cannot be shown again: the field says so.
 */
export const HIDDEN_PUBLIC_LINK_026 =
  '(a public link is enabled; Runway shows it only once: `dlt runtime unpublish` then `publish` makes a new one)';

/**
 * A job's `public_url` outside the answer that made the link: `null` for every client but
 * dlt-runtime 0.26.1, which reads "is there a link" from it (HIDDEN_PUBLIC_LINK_026).
 */
export function storedPublicUrl(flavour: ClientFlavour, linkEnabled: boolean): string | null {
  return flavour === 'runtime-026' && linkEnabled ? HIDDEN_PUBLIC_LINK_026 : null;
}
