import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  OutputCapture,
  expandSecrets,
  type OutputLine,
  type RunOutputRef,
  type RunOutputSink,
} from './output.js';

/** Collects what the capture emits (the sink is an interface; this is its simplest implementation). */
class Collect implements RunOutputSink {
  lines: OutputLine[] = [];
  async begin(): Promise<void> {}
  append(_ref: RunOutputRef, lines: readonly OutputLine[]): void {
    this.lines.push(...lines);
  }
  async end(): Promise<void> {}
}

const ref = { workspaceId: 'w', runId: 'r' };

describe('run output masking', () => {
  it('masks a secret, its base64 and URL-encoded forms, even across write boundaries', () => {
    const sink = new Collect();
    const secret = 'pa ss/w0rd+key';
    const cap = new OutputCapture(ref, sink, [secret, 'abc']);
    cap.write('stdout', Buffer.from(`token=${secret.slice(0, 5)}`));
    cap.write('stdout', Buffer.from(`${secret.slice(5)} done\n`));
    cap.write(
      'stderr',
      Buffer.from(`b64=${Buffer.from(secret).toString('base64')}\nurl=${encodeURIComponent(secret)}\n`),
    );
    cap.write('stdout', Buffer.from('abc is too short to mask\n'));
    cap.finish();
    const text = sink.lines.map((l) => l.text);
    assert.deepEqual(text, ['token=*** done', 'b64=***', 'url=***', 'abc is too short to mask']);
    assert.ok(!text.join('\n').includes(secret));
    assert.deepEqual(cap.stderrTail(), ['b64=***', 'url=***']);
  });

  it('expands secrets longest first and drops short ones', () => {
    const forms = expandSecrets(['abc', 'secret-value']);
    assert.ok(forms.includes('secret-value'));
    assert.ok(forms.includes(Buffer.from('secret-value').toString('base64')));
    assert.ok(!forms.includes('abc'));
    for (let i = 1; i < forms.length; i++) assert.ok(forms[i - 1]!.length >= forms[i]!.length);
  });

  it('masks each line of a multi-line secret (a PEM key is printed line by line)', () => {
    const sink = new Collect();
    const key = '-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\nCx9fQw2ZpLk0Tt\n-----END KEY-----';
    const cap = new OutputCapture(ref, sink, [key]);
    cap.write('stdout', Buffer.from(`${key}\n`));
    cap.finish();
    const text = sink.lines.map((l) => l.text).join('\n');
    assert.ok(!text.includes('AAAAB3NzaC1yc2EAAAADAQABAAABAQ'), text);
    assert.ok(!text.includes('Cx9fQw2ZpLk0Tt'), text);
  });
});

const MAX = 64 * 1024;
const joined = (lines: readonly OutputLine[]) => lines.map((l) => l.text + (l.part ? '' : '\n')).join('');

describe('run output lines', () => {
  it('cuts a 1 MB line into pieces of at most 64 KiB (all but the last marked part), losing nothing', () => {
    const sink = new Collect();
    const cap = new OutputCapture(ref, sink);
    const big = Array.from({ length: 1024 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    // Written in pipe-sized chunks, as a process does.
    const data = Buffer.from(`before\n${big}\nafter\n`);
    for (let i = 0; i < data.length; i += 65536) cap.write('stdout', data.subarray(i, i + 65536));
    cap.finish();
    assert.equal(joined(sink.lines), `before\n${big}\nafter\n`);
    const pieces = sink.lines.slice(1, -1);
    assert.equal(pieces.length, 16);
    for (const p of pieces) assert.ok(Buffer.byteLength(p.text) <= MAX);
    assert.deepEqual(
      pieces.map((p) => p.part === true),
      pieces.map((_, i) => i < pieces.length - 1),
    );
  });

  it('cuts multi-byte text at character boundaries', () => {
    const sink = new Collect();
    const cap = new OutputCapture(ref, sink);
    const line = 'é€😀'.repeat(30_000); // 2 + 3 + 4 bytes
    cap.write('stdout', Buffer.from(`${line}\n`));
    cap.finish();
    assert.equal(joined(sink.lines), `${line}\n`);
    for (const l of sink.lines) {
      assert.ok(Buffer.byteLength(l.text) <= MAX);
      assert.ok(!l.text.includes('\uFFFD'), 'no character was cut in two');
    }
  });

  it('never lets a secret through when an endless line is cut while the secret is being written', () => {
    const secret = 'S3cr3t-Value-42';
    for (const offset of [MAX - 7, MAX - 1, MAX, MAX + 3, 2 * MAX - 5]) {
      const sink = new Collect();
      const cap = new OutputCapture(ref, sink, [secret]);
      const text = `${'x'.repeat(offset)}${secret}${'y'.repeat(3 * MAX)}`;
      const bytes = Buffer.from(text);
      // Byte by byte around the secret, in larger chunks elsewhere: every write boundary position.
      let i = 0;
      while (i < bytes.length) {
        const step = i > offset - 40 && i < offset + 40 ? 1 : 4096;
        cap.write('stdout', bytes.subarray(i, i + step));
        i += step;
      }
      cap.finish();
      const out = joined(sink.lines);
      assert.ok(!out.includes(secret), `offset ${offset}: the secret leaked`);
      for (let k = 4; k < secret.length; k++) {
        // No piece ends with the secret's start while the next starts with its rest.
        for (let j = 0; j + 1 < sink.lines.length; j++) {
          const a = sink.lines[j]!.text;
          const b = sink.lines[j + 1]!.text;
          assert.ok(!(a.endsWith(secret.slice(0, k)) && b.startsWith(secret.slice(k))), `split at ${k}`);
        }
      }
      assert.equal(out, `${'x'.repeat(offset)}***${'y'.repeat(3 * MAX)}\n`);
    }
  });

  it('keeps binary garbage readable: invalid UTF-8 becomes U+FFFD, lines and order stay', () => {
    const sink = new Collect();
    const cap = new OutputCapture(ref, sink);
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256));
    cap.write('stdout', Buffer.from('start\n'));
    cap.write('stdout', garbage);
    cap.write('stdout', Buffer.from([0xe2, 0x82])); // half a €
    cap.write('stdout', Buffer.from([0xac, 0x0a])); // its end, then a newline
    cap.write('stdout', Buffer.from([0xff, 0xfe, 0x0a]));
    cap.write('stdout', Buffer.from('end\n'));
    cap.finish();
    const texts = sink.lines.map((l) => l.text);
    assert.equal(texts[0], 'start');
    assert.equal(texts.at(-1), 'end');
    assert.equal(texts.at(-2), '\uFFFD\uFFFD');
    assert.ok(
      texts.some((t) => t.endsWith('€')),
      'a character split across writes is kept whole',
    );
    // Every line is valid text that survives a JSON round trip unchanged.
    for (const t of texts) assert.equal(JSON.parse(JSON.stringify(t)), t);
  });

  it("stops logging at the run's log limit with one note, and keeps the stderr tail", () => {
    const sink = new Collect();
    const cap = new OutputCapture(ref, sink, [], 100);
    for (let i = 0; i < 50; i++) cap.write('stderr', Buffer.from(`line ${String(i).padStart(4, '0')}\n`));
    cap.finish();
    const texts = sink.lines.map((l) => l.text);
    // 10 bytes a line (with its newline): 10 lines fit in 100 bytes.
    assert.deepEqual(
      texts.slice(0, 10),
      Array.from({ length: 10 }, (_, i) => `line ${String(i).padStart(4, '0')}`),
    );
    assert.equal(texts.length, 11);
    assert.match(texts[10]!, /^\[runway\] the run's log reached its limit of 100 bytes/);
    assert.equal(cap.droppedLines, 40);
    assert.equal(cap.stderrTail().at(-1), 'line 0049', 'the failure message still has the last lines');
  });
});
