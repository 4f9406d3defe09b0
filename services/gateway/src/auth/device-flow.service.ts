import { Inject, Injectable } from '@nestjs/common';
import { Kvm, type KV } from '@nats-io/kv';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { z } from 'zod';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

/** Codes live 15 minutes in a JetStream KV bucket, so every gateway replica sees the same state. */
const TTL_MS = 15 * 60_000;
const entrySchema = z.object({
  userCode: z.string(),
  status: z.enum(['pending', 'approved', 'consumed']),
  userId: z.string().uuid().optional(),
  createdAt: z.string(),
});
type Entry = z.infer<typeof entrySchema>;

// No vowels or look-alikes: codes are read aloud and typed.
const ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';

export type PollResult =
  { state: 'pending' } | { state: 'approved'; userId: string } | { state: 'invalid'; reason: string };

@Injectable()
export class DeviceFlowService {
  private kv: Promise<KV> | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.ctx.nats).create(`${this.ctx.config.events.stream}_device_codes`, {
      ttl: TTL_MS,
      history: 1,
    });
    return this.kv;
  }

  private static key(deviceCode: string): string {
    return `dc_${createHash('sha256').update(deviceCode).digest('hex')}`;
  }

  async start(): Promise<{ deviceCode: string; userCode: string; expiresIn: number }> {
    const kv = await this.bucket();
    const deviceCode = randomBytes(32).toString('base64url');
    const pick = () => Array.from({ length: 4 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
    const userCode = `${pick()}-${pick()}`;
    const entry: Entry = { userCode, status: 'pending', createdAt: new Date().toISOString() };
    await kv.put(DeviceFlowService.key(deviceCode), JSON.stringify(entry));
    await kv.put(`uc_${userCode.replace('-', '')}`, DeviceFlowService.key(deviceCode));
    return { deviceCode, userCode, expiresIn: TTL_MS / 1000 };
  }

  /** Approves a pending request by its user code on behalf of `userId`. False if no such pending code. */
  async approve(userCode: string, userId: string): Promise<boolean> {
    const kv = await this.bucket();
    const normalised = userCode.toUpperCase().replace(/[^A-Z]/g, '');
    if (normalised.length !== 8) return false;
    const ref = await kv.get(`uc_${normalised}`);
    if (!ref || ref.operation !== 'PUT') return false;
    const key = ref.string();
    const cur = await kv.get(key);
    if (!cur || cur.operation !== 'PUT') return false;
    const entry = entrySchema.parse(cur.json());
    if (entry.status !== 'pending') return false;
    await kv.update(key, JSON.stringify({ ...entry, status: 'approved', userId }), cur.revision);
    return true;
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
    if (entry.status === 'consumed' || !entry.userId)
      return { state: 'invalid', reason: 'device code already used: run login again' };
    try {
      await kv.update(key, JSON.stringify({ ...entry, status: 'consumed' }), cur.revision);
    } catch {
      return { state: 'invalid', reason: 'device code already used: run login again' };
    }
    return { state: 'approved', userId: entry.userId };
  }
}
