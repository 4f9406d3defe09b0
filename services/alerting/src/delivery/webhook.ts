import { createHmac } from 'node:crypto';

/** The header of a webhook's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'Runway-Signature';
/** The alert's id: the same on every try, so a receiver drops a repeated delivery. */
export const ALERT_ID_HEADER = 'Runway-Alert-Id';

/** `t=<unix>,v1=<hex>` where v1 = HMAC-SHA256(secret, `${t}.${body}`). */
export function signatureOf(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

/** POSTs the alert as JSON, signed; resolves on 2xx, rejects with the status (or the network error) otherwise. */
export async function postWebhook(
  url: string,
  secret: string,
  alertId: string,
  body: string,
  timeoutMs = 10_000,
): Promise<void> {
  const t = Math.floor(Date.now() / 1000);
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'runway-alerts',
      [SIGNATURE_HEADER]: signatureOf(secret, body, t),
      [ALERT_ID_HEADER]: alertId,
    },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status > 299) throw new Error(`webhook answered ${res.status}`);
}
