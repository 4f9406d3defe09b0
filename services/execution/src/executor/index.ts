import type { RunwayConfig } from '#libs/config';
import type { RunExecutor } from './executor.js';
import { ProcessExecutor } from './process-executor.js';
import { SandboxExecutor } from './sandbox-executor.js';

export * from './executor.js';
export { ProcessExecutor } from './process-executor.js';
export { SandboxExecutor, SandboxUnavailableError, workspaceUid } from './sandbox-executor.js';

/** The executor the configuration asks for: the sandbox unless RUNWAY_SANDBOX=off. Throws when the sandbox cannot work here. */
export function createExecutor(worker: RunwayConfig['worker']): RunExecutor {
  return worker.sandbox ? SandboxExecutor.create({ limits: worker.limits }) : new ProcessExecutor();
}
