import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientFlavour, HIDDEN_PUBLIC_LINK_026, storedPublicUrl } from './compat.js';

describe('compat: which dlt client is calling, and what it reads', () => {
  it('dlt-runtime 0.26.1 is known by its User-Agent; everyone else is classic', () => {
    assert.equal(clientFlavour({ headers: { 'user-agent': 'dlt-runtime-cli/0.26.1' } }), 'runtime-026');
    assert.equal(clientFlavour({ headers: { 'user-agent': 'python-httpx/0.28.1' } }), 'classic');
    assert.equal(clientFlavour({ headers: {} }), 'classic');
  });

  it("a job's stored public_url: a note for 0.26.1 while a link is enabled (its unpublish needs it), else null", () => {
    assert.equal(storedPublicUrl('runtime-026', true), HIDDEN_PUBLIC_LINK_026);
    assert.equal(storedPublicUrl('runtime-026', false), null);
    assert.equal(storedPublicUrl('classic', true), null, 'the URL is only in the answer that made it');
    assert.equal(storedPublicUrl('classic', false), null);
    assert.doesNotMatch(HIDDEN_PUBLIC_LINK_026, /\/p\//, 'the note is no link');
  });
});
