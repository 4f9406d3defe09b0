import { createHash } from 'node:crypto';
import { z } from 'zod';
import { fileListDigest } from '#libs/archive';
import { deploymentFileSchema, type DeploymentFile } from '#libs/contracts';

/** The file list blob the gateway hands over (JSON array, sorted by path). */
export const fileListSchema = z.array(deploymentFileSchema);

/** See fileListDigest: equal for equal file sets, whatever the modes. */
export function filesDigest(files: readonly DeploymentFile[]): string {
  return fileListDigest(files);
}

/** Splits a file list into parts whose JSON stays well below NATS's default 1 MB message limit. */
export function splitParts(
  files: readonly DeploymentFile[],
  maxBytes = 256 * 1024,
  maxFiles = 5000,
): DeploymentFile[][] {
  const parts: DeploymentFile[][] = [];
  let current: DeploymentFile[] = [];
  let bytes = 0;
  for (const f of files) {
    const n = JSON.stringify(f).length + 1;
    if (current.length > 0 && (bytes + n > maxBytes || current.length >= maxFiles)) {
      parts.push(current);
      current = [];
      bytes = 0;
    }
    current.push(f);
    bytes += n;
  }
  if (current.length > 0) parts.push(current);
  return parts;
}

/** A stable UUID (version 5 layout) derived from a string: the same command always names the same deployment. */
export function stableUuid(seed: string): string {
  const b = createHash('sha256').update(seed).digest();
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
