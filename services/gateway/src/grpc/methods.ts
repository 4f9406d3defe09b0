import { accountsMethods } from './methods/accounts.js';
import { alertsMethods } from './methods/alerts.js';
import { read, type Method } from './methods/common.js';
import { configurationsMethods } from './methods/configurations.js';
import { deploymentsMethods } from './methods/deployments.js';
import { interactiveMethods } from './methods/interactive.js';
import { jobsMethods } from './methods/jobs.js';
import { manifestMethods } from './methods/manifest.js';
import { runsMethods } from './methods/runs.js';
import { sessionsMethods } from './methods/sessions.js';
import { workspacesMethods } from './methods/workspaces.js';

export { Services, workspaceOf, type Caller, type Method, type Req } from './methods/common.js';

/** The slices' tables as one; a method name declared by two slices is a programming error. */
function table(...slices: Record<string, Method>[]): Record<string, Method> {
  const all: Record<string, Method> = {};
  for (const slice of slices)
    for (const [name, method] of Object.entries(slice)) {
      if (name in all) throw new Error(`gRPC method ${name} is declared twice`);
      all[name] = method;
    }
  return all;
}

/**
 * Every unary method of runway.proto with its authorization, declared once in its slice's table
 * (`methods/<slice>.ts`; REST routes declare theirs with @Authenticated), each calling the same
 * application service as its REST route. Errors map to gRPC statuses in one place
 * (`toServiceError` in grpc-server.ts).
 */
export const METHODS: Record<string, Method> = table(
  {
    Ping: { auth: 'public', handle: () => Promise.resolve({ message: 'pong', service: 'api' }) },
  },
  accountsMethods,
  sessionsMethods,
  workspacesMethods,
  deploymentsMethods,
  configurationsMethods,
  jobsMethods,
  interactiveMethods,
  runsMethods,
  manifestMethods,
  alertsMethods,
);

/** FollowRunLogs (server streaming) is authorized like a read. */
export const FOLLOW_AUTH = read;
