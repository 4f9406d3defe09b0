import { Inject, Injectable } from '@nestjs/common';
import { Kvm, type KV } from '@nats-io/kv';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

/** Codes live 15 minutes in a JetStream KV bucket, so every gateway replica sees the same state. */
const TTL_MS = 15 * 60_000;
const clientSchema = z.object({
  /** The User-Agent the CLI sent (dlt's or runway's client name and version), cut to 200 characters. */
  userAgent: z.string(),
  ip: z.string(),
  requestedAt: z.string(),
});
export type DeviceClient = z.infer<typeof clientSchema>;
const entrySchema = z.object({
  userCode: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'consumed']),
  userId: z.string().uuid().optional(),
  /** The token the approver used: the login's JWT expires no later than it. */
  approvedWith: z.object({ tokenId: z.string(), expiresAt: z.string().nullable() }).optional(),
  createdAt: z.string(),
  client: clientSchema.optional(),
});
type Entry = z.infer<typeof entrySchema>;

// No vowels or look-alikes: codes are read aloud and typed.
const ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';

/**
 * The secret a CLI polls with. dlt-runtime 0.26.1 prints it as `dlt runtime login --resume <code>`,
 * and argparse takes a value that begins with `-` for an option, so the code is hex (never `-`).
 */
export const newDeviceCode = (): string => randomBytes(32).toString('hex');

export type PollResult =
  | { state: 'pending' }
  | { state: 'approved'; userId: string; approvedWith?: { tokenId: string; expiresAt: string | null } }
  | { state: 'invalid'; reason: string };

export interface PendingLogin {
  userCode: string;
  status: Entry['status'];
  client: DeviceClient | null;
}

@Injectable()
export class DeviceFlowService {
  private kv: Promise<KV> | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.ctx.nats).create(`${this.ctx.config.events.stream}_device_codes`, {
      ttl: TTL_MS,
      history: 1,
      maxValueSize: 16 * 1024,
      replicas: this.ctx.config.nats.replicas,
      ...(this.ctx.config.kvMaxBytes > 0 ? { max_bytes: this.ctx.config.kvMaxBytes } : {}),
    });
    return this.kv;
  }

  private static key(deviceCode: string): string {
    return `dc_${createHash('sha256').update(deviceCode).digest('hex')}`;
  }

  async start(client: {
    userAgent: string;
    ip: string;
  }): Promise<{ deviceCode: string; userCode: string; expiresIn: number }> {
    const kv = await this.bucket();
    const deviceCode = newDeviceCode();
    const pick = () => Array.from({ length: 4 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    const userCode = `${pick()}-${pick()}`;
    const createdAt = new Date().toISOString();
    const entry: Entry = {
      userCode,
      status: 'pending',
      createdAt,
      client: { userAgent: client.userAgent.slice(0, 200), ip: client.ip, requestedAt: createdAt },
    };
    await kv.put(DeviceFlowService.key(deviceCode), JSON.stringify(entry));
    await kv.put(`uc_${userCode.replace('-', '')}`, DeviceFlowService.key(deviceCode));
    return { deviceCode, userCode, expiresIn: TTL_MS / 1000 };
  }

  /** The login waiting behind a user code, with the client that asked for it; null if unknown or expired. */
  async describe(userCode: string): Promise<PendingLogin | null> {
    const found = await this.find(userCode);
    return found
      ? { userCode: found.entry.userCode, status: found.entry.status, client: found.entry.client ?? null }
      : null;
  }

  /**
   * Approves a pending request by its user code on behalf of `userId`, who used the token
   * `approvedWith`. Null if there is no such pending code.
   */
  async approve(
    userCode: string,
    userId: string,
    approvedWith?: { tokenId: string; expiresAt: string | null },
  ): Promise<PendingLogin | null> {
    const kv = await this.bucket();
    const found = await this.find(userCode);
    if (!found || found.entry.status !== 'pending') return null;
    const next: Entry = {
      ...found.entry,
      status: 'approved',
      userId,
      ...(approvedWith ? { approvedWith } : {}),
    };
    await kv.update(found.key, JSON.stringify(next), found.revision);
    return { userCode: next.userCode, status: next.status, client: next.client ?? null };
  }

  /** Denies a pending request: the CLI's next poll fails. Null if there is no such pending code. */
  async deny(userCode: string, userId: string): Promise<PendingLogin | null> {
    const kv = await this.bucket();
    const found = await this.find(userCode);
    if (!found || found.entry.status !== 'pending') return null;
    const next: Entry = { ...found.entry, status: 'denied', userId };
    await kv.update(found.key, JSON.stringify(next), found.revision);
    return { userCode: next.userCode, status: next.status, client: next.client ?? null };
  }

  private async find(userCode: string): Promise<{ key: string; revision: number; entry: Entry } | null> {
    const kv = await this.bucket();
    const normalised = userCode.toUpperCase().replace(/[^A-Z]/g, '');
    if (normalised.length !== 8) return null;
    const ref = await kv.get(`uc_${normalised}`);
    if (!ref || ref.operation !== 'PUT') return null;
    const key = ref.string();
    const cur = await kv.get(key);
    if (!cur || cur.operation !== 'PUT') return null;
    return { key, revision: cur.revision, entry: entrySchema.parse(cur.json()) };
  }

  /** One poll of the CLI. An approved code is consumed by the first successful poll. */
  async poll(deviceCode: string): Promise<PollResult> {
    const kv = await this.bucket();
    const key = DeviceFlowService.key(deviceCode);
    const cur = await kv.get(key);
    if (!cur || cur.operation !== 'PUT')
      return { state: 'invalid', reason: 'unknown or expired device code: run login again' };
    const entry = entrySchema.parse(cur.json());
    if (entry.status === 'pending') return { state: 'pending' };
    if (entry.status === 'denied') return { state: 'invalid', reason: 'the login was denied' };
    if (entry.status === 'consumed' || !entry.userId)
      return { state: 'invalid', reason: 'device code already used: run login again' };
    try {
      await kv.update(key, JSON.stringify({ ...entry, status: 'consumed' }), cur.revision);
    } catch {
      return { state: 'invalid', reason: 'device code already used: run login again' };
    }
    return {
      state: 'approved',
      userId: entry.userId,
      ...(entry.approvedWith ? { approvedWith: entry.approvedWith } : {}),
    };
  }
}
