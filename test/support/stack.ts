import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '#libs/config';
import { createTestEnvironment, freePort, type TestEnvironment } from '#libs/testing';
import { startRunway, type RunningRunway } from '../../deploy/local/src/runway.js';

export interface TestStack {
  env: TestEnvironment;
  runway: RunningRunway;
  /** http://127.0.0.1:<port> */
  url: string;
  api: string;
  auth: string;
  dataDir: string;
  adminToken: string;
  workspaceId: string;
  /** fetch against the API base with the admin token unless another is given. */
  call: (
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
    headers?: Record<string, string>,
  ) => Promise<{ status: number; json: unknown; text: string }>;
  stop: () => Promise<void>;
}

/**
 * The whole of Runway in this test process, on a private nats-server (service subjects are not
 * prefixed, so each stack gets its own server) and a fresh database of the test Postgres. With
 * `cluster: N`, on N private nats-servers clustered on loopback, everything with N replicas.
 */
export async function startTestStack(
  extraEnv: Record<string, string> = {},
  opts: { cluster?: number } = {},
): Promise<TestStack> {
  const env = await createTestEnvironment(opts.cluster ? { cluster: opts.cluster } : { ownNats: true });
  const dataDir = mkdtempSync(join(tmpdir(), 'runway-stack-'));
  const port = await freePort();
  const config = loadConfig({
    RUNWAY_DATA_DIR: dataDir,
    RUNWAY_HTTP_PORT: String(port),
    RUNWAY_GRPC_PORT: String(await freePort()),
    NATS_URL: env.natsUrl,
    DATABASE_URL: env.databaseUrl,
    RUNWAY_EVENTS_STREAM: env.stream,
    RUNWAY_SUBJECT_PREFIX: env.subjectPrefix,
    RUNWAY_NATS_REPLICAS: String(env.replicas),
    RUNWAY_LOG_LEVEL: 'error',
    // The tests schedule jobs every few seconds (those of the limit set their own).
    RUNWAY_MIN_SCHEDULE_INTERVAL_SECONDS: '1',
    // Runs use the interpreter `npm test` prepared (the project .venv with dlt).
    ...(process.env.RUNWAY_PYTHON ? { RUNWAY_PYTHON: process.env.RUNWAY_PYTHON } : {}),
    ...extraEnv,
  });
  const runway = await startRunway(config);
  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const url = `http://127.0.0.1:${port}`;
  const call: TestStack['call'] = async (method, path, body, token, headers = {}) => {
    const h: Record<string, string> = { ...headers };
    const t = token === undefined ? adminToken : token;
    if (t) h.authorization = `Bearer ${t}`;
    let payload: string | undefined;
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(`${url}${path}`, { method, headers: h, body: payload });
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text };
  };
  return {
    env,
    runway,
    url,
    api: `${url}/api`,
    auth: `${url}/auth`,
    dataDir,
    adminToken,
    workspaceId: runway.admin.defaultWorkspaceId,
    call,
    stop: async () => {
      await runway.stop();
      await env.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
