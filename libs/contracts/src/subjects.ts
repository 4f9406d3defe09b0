/** NATS subjects for commands and admin requests (request/reply), all under the deployment's prefix. */
export const Subjects = {
  health: (service: string) => `runway.health.${service}`,
  projectionRebuild: (name: string) => `runway.admin.projection.${name}.rebuild`,
} as const;

export const SERVICES = [
  'gateway',
  'deployments',
  'configurations',
  'scheduling',
  'execution',
  'logs',
  'alerting',
] as const;
export type ServiceName = (typeof SERVICES)[number];

/** Aggregate types used in subjects `evt.<workspace>.<type>.<id>`. */
export const AggregateTypes = {
  deployment: 'deployment',
  deploymentFiles: 'deployment-files',
  workspace: 'workspace',
  user: 'user',
  /** One per normalised email (id: its SHA-256): the email's claim by one user. */
  email: 'email',
  /** One instance aggregate (id `default`): the first start. */
  instance: 'instance',
  configuration: 'configuration',
  keyring: 'keyring',
  job: 'job',
  run: 'run',
  runlog: 'runlog',
  alertRule: 'alert-rule',
  alertDelivery: 'alert-delivery',
} as const;
