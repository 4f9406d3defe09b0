import { createHash } from 'node:crypto';

/** RFC 4122 version 5 (SHA-1, name-based) UUID of `name` in the namespace `namespace` (a UUID). */
export function uuidv5(name: string, namespace: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  if (ns.length !== 16) throw new Error(`namespace ${namespace} is not a UUID`);
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * The id of the job named `name` in a workspace: the aggregate id (subjects allow no '/' or '.',
 * which names may hold) and the `id` of the compatible API. Deterministic, so an upsert by name
 * needs no lookup and two concurrent creates of one name meet on the same aggregate.
 */
export function jobIdFor(workspaceId: string, name: string): string {
  return uuidv5(name, workspaceId);
}
