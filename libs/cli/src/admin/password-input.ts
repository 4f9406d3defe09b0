import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { CliError } from '../instance.js';

/** All of stdin, without the trailing newline (`printf '%s' pw | …` and `echo pw | …` alike). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** One line typed on the terminal without echo. */
function promptHidden(question: string): Promise<string> {
  process.stderr.write(question);
  const muted = new Writable({ write: (_chunk, _enc, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  return new Promise((resolve) =>
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    }),
  );
}

/**
 * A password from stdin (`--password-stdin`) or typed twice at a prompt (`--password`), never from
 * argv (visible in `ps`). Exit code 2 when neither is possible or the two entries differ.
 */
export async function readPassword(o: { passwordStdin?: boolean; prompt?: boolean }): Promise<string> {
  let pw: string;
  if (o.passwordStdin) pw = await readStdin();
  else {
    if (!process.stdin.isTTY)
      throw new CliError('no terminal to type the password on: pipe it with --password-stdin', 2);
    pw = await promptHidden('Password: ');
    if ((await promptHidden('Repeat the password: ')) !== pw)
      throw new CliError('the two passwords differ', 2);
  }
  if (pw.length === 0) throw new CliError('the password is empty', 2);
  return pw;
}
