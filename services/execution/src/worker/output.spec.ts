import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputCapture, expandSecrets, type OutputLine, type RunOutputRef, type RunOutputSink } from './output.js';

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
    cap.write('stderr', Buffer.from(`b64=${Buffer.from(secret).toString('base64')}\nurl=${encodeURIComponent(secret)}\n`));
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
});
