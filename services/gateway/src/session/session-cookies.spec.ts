import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clearedSessionCookies, sessionCookies, wantsSecure } from './session-cookies.js';

describe('session cookies', () => {
  it('are HttpOnly (session) or readable (CSRF), SameSite=Lax, Path=/, and Secure behind https', () => {
    const [session, csrf] = sessionCookies(true, 'abc', 'x/y');
    assert.equal(session, 'runway_session=abc; Path=/; SameSite=Lax; HttpOnly; Secure');
    assert.equal(csrf, 'runway_csrf=x%2Fy; Path=/; SameSite=Lax; Secure');
    assert.ok(sessionCookies(false, 'abc', 'y').every((c) => !c.includes('Secure')));
    assert.ok(clearedSessionCookies(true).every((c) => c.includes('Max-Age=0') && c.includes('Secure')));
  });

  it('are Secure when the request came over https or the public URL is https', () => {
    assert.equal(wantsSecure({ protocol: 'https' }, 'http://127.0.0.1:8080'), true);
    assert.equal(wantsSecure({ protocol: 'http' }, 'https://runway.example.com'), true);
    assert.equal(wantsSecure({ protocol: 'http' }, 'http://127.0.0.1:8080'), false);
  });
});
