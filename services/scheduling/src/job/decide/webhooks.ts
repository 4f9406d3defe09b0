/** Trigger webhooks of manifest jobs (the token's hash only). */

import type { JobSpec } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import type { JobEvent } from '../job.events.js';
import type { JobState } from '../job.state.js';
import { requireJob, refuseArchived } from './guards.js';

/** Enable, rotate or revoke the webhook of a manifest job with a `webhook:` trigger (the token's hash only). */
export interface ChangeWebhook {
  type: 'ChangeWebhook';
  action: 'enable' | 'rotate' | 'revoke';
  /** SHA-256 of the new token (enable, rotate). */
  tokenHash?: string;
  actor: string;
}

/** The job's `webhook:` trigger, if its manifest declares one. */
export const webhookTrigger = (spec: JobSpec | undefined): string | undefined =>
  spec?.manifest?.triggers.find((t) => t === 'webhook' || t.startsWith('webhook:'));

/**
 * Webhooks exist for manifest jobs that declare a `webhook:` trigger and are not archived. Enable
 * on an enabled webhook and revoke without one decide nothing; rotate needs one. Hash only.
 */
export function decideChangeWebhook(command: ChangeWebhook, state: JobState): JobEvent[] {
  const spec = requireJob(state);
  const current = state.webhookHash ?? null;
  if (command.action === 'revoke')
    return current === null
      ? []
      : [{ type: 'WebhookRevoked', data: { previousHash: current, by: command.actor } }];
  if (!webhookTrigger(spec))
    throw new DomainError(
      `job ${spec.name} declares no webhook: trigger in its manifest`,
      409,
      'no_webhook_trigger',
    );
  refuseArchived(spec);
  if (!command.tokenHash) throw new DomainError('a webhook needs the hash of its token');
  if (command.action === 'enable')
    return current !== null
      ? []
      : [{ type: 'WebhookEnabled', data: { tokenHash: command.tokenHash, by: command.actor } }];
  if (current === null) throw new DomainError(`job ${spec.name} has no webhook to rotate: enable one first`);
  return [
    {
      type: 'WebhookRotated',
      data: { tokenHash: command.tokenHash, previousHash: current, by: command.actor },
    },
  ];
}
