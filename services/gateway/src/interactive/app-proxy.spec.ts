import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { safeRest, stripCookies } from './app-proxy.js';
import { hashLinkToken, LINK_TOKEN, newLinkToken } from './interactive.service.js';
import { startingPage } from './starting-page.js';

describe('interactive proxy helpers', () => {
  it('keeps paths inside the app: no ".." segment, plain or percent-encoded, no encoded slash', () => {
    assert.ok(safeRest('/'));
    assert.ok(safeRest('/assets/index-abc.js'));
    assert.ok(safeRest('/a..b/c.'));
    for (const bad of ['/../api', '/a/%2e%2e/b', '/%2E%2E', '/a%2fb', '/a%5cb', '/%zz'])
      assert.ok(!safeRest(bad), bad);
  });

  it("strips Runway's cookies and keeps the app's own", () => {
    assert.equal(stripCookies('runway_session=s; runway_csrf=c'), undefined);
    assert.equal(stripCookies('a=1; runway_session=s;b=2'), 'a=1; b=2');
    assert.equal(stripCookies(undefined), undefined);
  });

  it('makes 43-character tokens and stores only their SHA-256', () => {
    const t = newLinkToken();
    assert.match(t, LINK_TOKEN);
    assert.notEqual(newLinkToken(), t);
    assert.match(hashLinkToken(t), /^[0-9a-f]{64}$/);
    assert.ok(!hashLinkToken(t).includes(t));
  });

  it('escapes the job name in the starting page and its script', () => {
    const html = startingPage({
      jobName: '<script>alert(1)</script>',
      statusPath: '/i/x/</script><script>alert(2)</script>/.runway/status',
      status: 'pending',
    });
    assert.ok(!html.includes('<script>alert(1)'));
    assert.ok(!html.includes('</script><script>alert(2)'));
    assert.match(html, /\.runway\/status/);
  });
});
