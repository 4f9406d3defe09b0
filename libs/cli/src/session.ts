import { RunwayClient } from '#libs/client';
import { loadCredential } from './credentials.js';
import { CliError } from './instance.js';
import { LocalWorkspace } from './workspace/local.js';

export interface GlobalOptions {
  json?: boolean;
  apiUrl?: string;
  token?: string;
}

/**
 * API base: --api-url, RUNTIME__API_BASE_URL, `[runtime] api_base_url` of .dlt/config.toml, else
 * the local default. Token: --token, RUNWAY_TOKEN / RUNTIME__AUTH_TOKEN, else the saved credential.
 */
export function resolveApiBase(opts: GlobalOptions, ws = new LocalWorkspace()): string {
  const fromFile = ws.runtimeConfig().api_base_url;
  const base =
    opts.apiUrl ??
    process.env.RUNTIME__API_BASE_URL ??
    (typeof fromFile === 'string' && fromFile ? fromFile : undefined) ??
    `http://127.0.0.1:${process.env.RUNWAY_HTTP_PORT ?? '8080'}/api`;
  if (!/^https?:\/\/\S+$/.test(base))
    throw new CliError(`invalid API base URL ${base}: expected http(s)://host:port/api`, 2);
  return base.replace(/\/$/, '');
}

export function client(opts: GlobalOptions, requireToken = true, ws = new LocalWorkspace()): RunwayClient {
  const apiBase = resolveApiBase(opts, ws);
  const token =
    opts.token ??
    process.env.RUNWAY_TOKEN ??
    process.env.RUNTIME__AUTH_TOKEN ??
    loadCredential(apiBase)?.token;
  if (!token && requireToken)
    throw new CliError(`not logged in to ${apiBase}: run \`runway login\` (or pass --token)`);
  return new RunwayClient({ apiBase, authBase: process.env.RUNTIME__AUTH_BASE_URL, token });
}

/**
 * The workspace this directory is bound to (`[runtime] workspace_id`), bound to the caller's default
 * workspace on first use, like the dlt CLI does.
 */
export async function boundWorkspace(
  c: RunwayClient,
  ws = new LocalWorkspace(),
  say: (m: string) => void = () => undefined,
): Promise<string> {
  const local = ws.runtimeConfig().workspace_id;
  if (typeof local === 'string' && local) return local;
  const me = await c.me();
  ws.setRuntimeValue('workspace_id', me.default_workspace.id);
  say(
    `Bound this workspace to ${me.default_workspace.name} (${me.default_workspace.id}) in .dlt/config.toml`,
  );
  return me.default_workspace.id;
}

/** The local workspace, an authenticated client and the bound workspace id: what most commands start with. */
export async function openSession(opts: GlobalOptions, say: (m: string) => void = () => undefined) {
  const ws = new LocalWorkspace();
  const c = client(opts, true, ws);
  const wsId = await boundWorkspace(c, ws, say);
  return { ws, c, wsId };
}
