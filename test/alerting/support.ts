import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '#libs/testing';

export interface ReceivedMail {
  receivedAt: number;
  mailFrom: string;
  to: string[];
  /** The raw message (headers and the base64 body). */
  data: string;
  /** The decoded text body. */
  text: string;
  header: (name: string) => string | undefined;
}

/** aiosmtpd (a real SMTP server) in a child process; every accepted message is collected. */
export interface SmtpSink {
  url: string;
  mails: ReceivedMail[];
  waitFor: (pred: (m: ReceivedMail) => boolean, timeoutMs?: number) => Promise<ReceivedMail>;
  stop: () => Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The script lives beside the sources (dist has only the compiled .js). */
const sinkScript = join(here, '..', '..', '..', 'test', 'alerting', 'smtp_sink.py');

function parseMail(data: string) {
  const [head = '', body = ''] = data.split(/\r?\n\r?\n/, 2);
  const headers = new Map<string, string>();
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const text = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return { text, header: (n: string) => headers.get(n.toLowerCase()) };
}

async function until<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  for (const end = Date.now() + timeoutMs; ;) {
    const v = find();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const port = await freePort();
  const python = process.env.RUNWAY_PYTHON ?? 'python3';
  const child: ChildProcess = spawn(python, [sinkScript, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const mails: ReceivedMail[] = [];
  let listening = false;
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    if ('listening' in v) listening = true;
    if ('data' in v && 'received_at' in v && 'mail_from' in v && 'rcpt_tos' in v) {
      const data = String(v.data);
      mails.push({
        receivedAt: Number(v.received_at) * 1000,
        mailFrom: String(v.mail_from),
        to: Array.isArray(v.rcpt_tos) ? v.rcpt_tos.map(String) : [],
        data,
        ...parseMail(data),
      });
    }
  });
  await until(() => (listening ? true : undefined), 15_000, 'the SMTP sink to listen');
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    waitFor: (pred, timeoutMs = 15_000) => until(() => mails.find(pred), timeoutMs, 'an email'),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    },
  };
}

export interface ReceivedHook {
  path: string;
  receivedAt: number;
  body: string;
  json: Record<string, unknown>;
  signature: string;
  alertId: string;
  /** The status this receiver answered. */
  answered: number;
}

/**
 * A real HTTP webhook receiver: `statusFor(path, n)` says what to answer the n-th request (1-based)
 * to a path (0: no answer).
 */
export interface HookReceiver {
  url: string;
  hooks: ReceivedHook[];
  waitFor: (pred: (h: ReceivedHook) => boolean, timeoutMs?: number) => Promise<ReceivedHook>;
  stop: () => Promise<void>;
}

export async function startHookReceiver(
  statusFor: (path: string, n: number) => number,
): Promise<HookReceiver> {
  const hooks: ReceivedHook[] = [];
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      const status = statusFor(path, n);
      const body = Buffer.concat(chunks).toString('utf8');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        /* kept empty: the test fails on it */
      }
      hooks.push({
        path,
        receivedAt: Date.now(),
        body,
        json,
        signature: String(req.headers['runway-signature'] ?? ''),
        alertId: String(req.headers['runway-alert-id'] ?? ''),
        answered: status,
      });
      // 0: no answer at all (the sender is left waiting).
      if (status !== 0) res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    hooks,
    waitFor: (pred, timeoutMs = 15_000) => until(() => hooks.find(pred), timeoutMs, 'a webhook'),
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** What a receiver does: checks `t=<unix>,v1=<hex>` against HMAC-SHA256(secret, "<t>.<body>"). */
export function verifySignature(secret: string, header: string, body: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const want = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'));
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
