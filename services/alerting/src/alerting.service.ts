import type { ServiceDefinition } from '#libs/service-host';
import { registerAlertDeliveryEvents } from './delivery/delivery.events.js';
import { alertDeliveriesProjection } from './delivery/read-models/deliveries.projection.js';
import { alertingMigrations } from './migrations/index.js';
import { alertRulesProjection } from './rule/read-models/rules.projection.js';
import { registerAlertRuleEvents } from './rule/rule.events.js';
import { alertRunsProjection } from './runs/run-jobs.projection.js';

export const alertingService: ServiceDefinition = {
  name: 'alerting',
  migrations: [alertingMigrations],
  register: (registry) => void registerAlertDeliveryEvents(registerAlertRuleEvents(registry)),
  projections: [alertRulesProjection, alertRunsProjection, alertDeliveriesProjection],
};
