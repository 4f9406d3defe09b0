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
