import { createHash } from 'node:crypto';

/** Namespace of alert ids (a fixed random UUID). */
const ALERTS = '5c0b3c34-3f5e-4e8e-9a57-7d0f1f6b2a11';

/** RFC 4122 version 5 UUID of `name` in `namespace`. */
function uuidv5(name: string, namespace: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The id of the one alert a rule may raise for a run: the same on every delivery of the run's end. */
export function alertIdFor(ruleId: string, runId: string): string {
  return uuidv5(`${ruleId}/${runId}`, ALERTS);
}
