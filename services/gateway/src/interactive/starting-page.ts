/** HTML-escapes text for an element or a quoted attribute. */
const html = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A JSON value safe inside a <script> element. */
const scriptValue = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');

/**
 * The page a visit gets while the app is not answering yet: it polls the small JSON status route
 * beside the app (`<prefix>/.runway/status`, which also wakes an app stopped meanwhile) once a
 * second and reloads into the app as soon as it answers; a failed start shows the app's error.
 */
export function startingPage(opts: { jobName: string; statusPath: string; status: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Starting ${html(opts.jobName)}…</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;display:grid;place-items:center;min-height:100vh;background:#f6f7f9;color:#1d2433}
main{max-width:36rem;padding:2rem;text-align:center}
.spin{width:2rem;height:2rem;border:3px solid #c8ccd4;border-top-color:#3a5bd9;border-radius:50%;margin:0 auto 1rem;animation:s 1s linear infinite}
@keyframes s{to{transform:rotate(360deg)}}
.failed .spin{display:none}
#detail{color:#5b6478;white-space:pre-wrap}
</style>
</head>
<body>
<main id="main">
<div class="spin"></div>
<h1 id="title">Starting ${html(opts.jobName)}…</h1>
<p id="detail" data-status="${html(opts.status)}">The app is starting (status: ${html(opts.status)}). This page opens it as soon as it answers.</p>
</main>
<script>
(function () {
  var statusPath = ${scriptValue(opts.statusPath)};
  var detail = document.getElementById('detail');
  function poll() {
    fetch(statusPath, { cache: 'no-store', credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.ready) { window.location.reload(); return; }
        if (s.failed) {
          document.getElementById('main').className = 'failed';
          document.getElementById('title').textContent = 'The app could not start';
          detail.textContent = (s.message || s.status) + '\\n\\nReload the page to try again.';
          return;
        }
        detail.setAttribute('data-status', s.status);
        detail.textContent = 'The app is starting (status: ' + s.status + '). This page opens it as soon as it answers.';
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 500);
})();
</script>
</body>
</html>
`;
}
