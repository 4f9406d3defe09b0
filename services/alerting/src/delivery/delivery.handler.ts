import { AggregateTypes } from '#libs/contracts';
import { CommandHandler, type CommitMeta, type EventStore } from '#libs/eventstore';
import {
  alertDeliveryDecider,
  type AlertDeliveryCommand,
  type AlertDeliveryState,
} from './delivery.decider.js';
import type { AlertDeliveryEvent } from './delivery.events.js';

/** load → decide → append for the `alert-delivery` aggregate (id = alert id). */
export class AlertDeliveryCommands {
  private readonly handler: CommandHandler<AlertDeliveryState, AlertDeliveryCommand, AlertDeliveryEvent>;

  constructor(store: EventStore) {
    this.handler = new CommandHandler(store, alertDeliveryDecider, { maxRetries: 10 });
  }

  private ref(workspaceId: string, alertId: string) {
    return { workspaceId, type: AggregateTypes.alertDelivery, id: alertId };
  }

  async state(workspaceId: string, alertId: string): Promise<AlertDeliveryState> {
    return (await this.handler.load(this.ref(workspaceId, alertId))).state;
  }

  async record(
    workspaceId: string,
    alertId: string,
    command: AlertDeliveryCommand,
    meta: CommitMeta,
  ): Promise<AlertDeliveryState> {
    return (await this.handler.handle(this.ref(workspaceId, alertId), command, meta)).state;
  }
}
