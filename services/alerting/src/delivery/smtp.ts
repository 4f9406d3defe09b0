import { randomUUID } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface SmtpMessage {
  from: string;
  to: readonly string[];
  subject: string;
  text: string;
  /** Extra headers (e.g. Runway-Alert-Id). */
  headers?: Record<string, string>;
}

/** A reply of the server that is not the one expected: why the mail was not sent. */
export class SmtpError extends Error {}

const HEADER_VALUE = /^[\x20-\x7e]*$/;

/** RFC 2047 encoded-word for a header value that is not plain ASCII. */
function headerValue(v: string): string {
  const clean = v.replace(/[\r\n]+/g, ' ');
  return HEADER_VALUE.test(clean) ? clean : `=?UTF-8?B?${Buffer.from(clean, 'utf8').toString('base64')}?=`;
}

/** The message as RFC 5322 text (UTF-8 body, base64), lines dot-stuffed for DATA. */
export function formatMessage(m: SmtpMessage, now = new Date()): string {
  const headers: Record<string, string> = {
    From: m.from,
    To: m.to.join(', '),
    Subject: headerValue(m.subject),
    Date: now.toUTCString(),
    'Message-ID': `<${randomUUID()}@runway>`,
    'MIME-Version': '1.0',
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Transfer-Encoding': 'base64',
    ...Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, headerValue(v)])),
  };
  const body = (
    Buffer.from(m.text, 'utf8')
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\r\n');
  return `${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Sends one message over SMTP (RFC 5321): `smtp://[user:pass@]host[:port]` (plain; AUTH PLAIN when
 * credentials are given) or `smtps://…` (implicit TLS, port 465 by default). Resolves once the
 * server accepted the message (250 after DATA); rejects with SmtpError on any other reply.
 */
export async function sendMail(url: string, m: SmtpMessage, timeoutMs = 10_000): Promise<void> {
  const u = new URL(url);
  const secure = u.protocol === 'smtps:';
  const port = Number(u.port || (secure ? 465 : 25));
  const host = u.hostname;
  const socket: Socket = secure ? tlsConnect({ host, port, servername: host }) : netConnect({ host, port });
  socket.setTimeout(timeoutMs);
  let buffer = '';
  const waiting: ((line: { code: number; text: string }) => void)[] = [];
  const replies: { code: number; text: string }[] = [];
  let failure: Error | undefined;
  let lines: string[] = [];
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let i: number;
    while ((i = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      lines.push(line.slice(4));
      if (line[3] === '-') continue;
      const reply = { code: Number(line.slice(0, 3)), text: lines.join('\n') };
      lines = [];
      const w = waiting.shift();
      if (w) w(reply);
      else replies.push(reply);
    }
  });
  const failed = new Promise<never>((_, reject) => {
    const fail = (err: Error) => {
      failure ??= err;
      reject(failure);
    };
    socket.on('error', fail);
    socket.on('timeout', () => fail(new SmtpError(`SMTP server ${host}:${port} did not answer in time`)));
    socket.on('close', () => fail(new SmtpError(`SMTP server ${host}:${port} closed the connection`)));
  });
  failed.catch(() => undefined);
  const next = () =>
    Promise.race([
      failed,
      new Promise<{ code: number; text: string }>((resolve) => {
        const r = replies.shift();
        if (r) resolve(r);
        else waiting.push(resolve);
      }),
    ]);
  const expect = async (what: string, ok: readonly number[]) => {
    const r = await next();
    if (!ok.includes(r.code)) throw new SmtpError(`SMTP ${what}: ${r.code} ${r.text}`);
    return r;
  };
  const command = (line: string, what: string, ok: readonly number[]) => {
    socket.write(`${line}\r\n`);
    return expect(what, ok);
  };
  try {
    await expect('greeting', [220]);
    await command('EHLO runway', 'EHLO', [250]);
    if (u.username) {
      const plain = Buffer.from(
        `\0${decodeURIComponent(u.username)}\0${decodeURIComponent(u.password)}`,
        'utf8',
      ).toString('base64');
      await command(`AUTH PLAIN ${plain}`, 'AUTH', [235]);
    }
    await command(`MAIL FROM:<${m.from}>`, 'MAIL FROM', [250]);
    for (const to of m.to) await command(`RCPT TO:<${to}>`, `RCPT TO ${to}`, [250, 251]);
    await command('DATA', 'DATA', [354]);
    const data = formatMessage(m)
      .split('\r\n')
      .map((l) => (l.startsWith('.') ? `.${l}` : l))
      .join('\r\n');
    await command(`${data}\r\n.`, 'message', [250]);
    socket.write('QUIT\r\n');
  } finally {
    socket.end();
    socket.destroySoon?.();
  }
}
