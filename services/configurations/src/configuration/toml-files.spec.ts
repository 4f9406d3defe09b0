import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  analyzeConfiguration,
  classifyFile,
  InvalidConfigurationError,
  MAX_CONFIGURATION_BYTES,
  profileWarnings,
} from './toml-files.js';

const file = (path: string, text: string) => ({ path, content: Buffer.from(text) });

describe('configuration files', () => {
  it('derives kind and profile from the file name', () => {
    assert.deepEqual(classifyFile('config.toml'), { kind: 'config', profile: 'default' });
    assert.deepEqual(classifyFile('secrets.toml'), { kind: 'secrets', profile: 'default' });
    assert.deepEqual(classifyFile('prod.secrets.toml'), { kind: 'secrets', profile: 'prod' });
    assert.deepEqual(classifyFile('access.config.toml'), { kind: 'config', profile: 'access' });
    assert.deepEqual(classifyFile('sub/dev.config.toml'), { kind: 'config', profile: 'dev' });
    assert.deepEqual(classifyFile('myconfig.toml'), { kind: 'config', profile: null });
    assert.deepEqual(classifyFile('a.b.secrets.toml'), { kind: 'secrets', profile: null });
    assert.equal(classifyFile('pipeline.py'), undefined);
    assert.equal(classifyFile('config.toml.bak'), undefined);
  });

  it('lists dotted key names, never values, and the profiles present', () => {
    const r = analyzeConfiguration([
      file('config.toml', '[runtime]\nlog_level = "INFO"\n[sources.notion]\npage_ids = ["a", "b"]\n'),
      file(
        'prod.secrets.toml',
        '[destination.postgres.credentials]\npassword = "hunter2"\n"odd.key" = 1\n[[tables]]\nname = "x"\n',
      ),
      file('access.secrets.toml', 'big = 123456789012345678901234567890\nwhen = 1979-05-27T07:32:00Z\n'),
    ]);
    assert.deepEqual(r.profiles, ['default', 'access', 'prod']);
    assert.deepEqual(r.warnings, []);
    const byPath = Object.fromEntries(r.files.map((f) => [f.path, f]));
    assert.deepEqual(byPath['config.toml']!.keys, ['runtime.log_level', 'sources.notion.page_ids']);
    assert.deepEqual(byPath['prod.secrets.toml']!.keys, [
      'destination.postgres.credentials."odd.key"',
      'destination.postgres.credentials.password',
      'tables',
    ]);
    assert.deepEqual(byPath['access.secrets.toml']!.keys, ['big', 'when']);
    assert.equal(JSON.stringify(r).includes('hunter2'), false);
  });

  it('names the file, line and column of a TOML error, without quoting the content', () => {
    const bad = file('prod.secrets.toml', '[ok]\na = 1\npassword = "sk_live_unterminated\n');
    assert.throws(
      () => analyzeConfiguration([file('config.toml', 'x = 1\n'), bad]),
      (e: unknown) => {
        assert.ok(e instanceof InvalidConfigurationError);
        assert.equal(e.status, 400);
        assert.match(e.message, /^prod\.secrets\.toml: line 3, column \d+: /);
        assert.equal(e.message.includes('sk_live'), false, e.message);
        return true;
      },
    );
    assert.throws(
      () => analyzeConfiguration([file('config.toml', 'a = 1\na = 2\n')]),
      /: config\.toml: line 2, column \d+: .*redefine/,
    );
  });

  it('refuses other files, invalid UTF-8, bad paths and oversize uploads', () => {
    assert.throws(
      () => analyzeConfiguration([file('pipeline.py', 'x')]),
      /pipeline\.py: not a configuration file/,
    );
    assert.throws(
      () => analyzeConfiguration([{ path: 'config.toml', content: Buffer.from([0xff, 0xfe, 0x41]) }]),
      /config\.toml: not valid UTF-8/,
    );
    assert.throws(() => analyzeConfiguration([file('../config.toml', '')]), /not a valid relative file path/);
    assert.throws(
      () => analyzeConfiguration([file('/etc/config.toml', '')]),
      /not a valid relative file path/,
    );
    assert.throws(
      () => analyzeConfiguration([file('config.toml', `x = "${'a'.repeat(MAX_CONFIGURATION_BYTES)}"`)]),
      /too large/,
    );
  });

  it('warns like dlt when prod or access is missing, and about files dlt does not read', () => {
    assert.deepEqual(profileWarnings(['default', 'prod', 'access']), []);
    const noAccess = profileWarnings(['default', 'prod']);
    assert.equal(noAccess.length, 1);
    assert.match(noAccess[0]!, /"access" is not defined.*fall back to profile prod/);
    const neither = profileWarnings(['default']);
    assert.equal(neither.length, 2);
    assert.match(neither[0]!, /"prod" is not defined/);
    assert.match(neither[1]!, /fall back to config\.toml and secrets\.toml/);
    const r = analyzeConfiguration([file('myconfig.toml', 'a = 1'), file('sub/prod.config.toml', 'a = 1')]);
    assert.ok(r.warnings.some((w) => /myconfig\.toml is not read by dlt/.test(w)));
    assert.ok(r.warnings.some((w) => /sub\/prod\.config\.toml is in a subfolder/.test(w)));
  });
});
