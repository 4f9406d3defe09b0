#!/usr/bin/env node
// The test runner scripts/test.mjs starts (with nats-server and PostgreSQL already up): runs the
// test files given, in the order given, four at a time, with the spec reporter. `node --test`
// sorts its files by name, which started the longest integration files last; node:test's run()
// keeps the order, so scripts/test.mjs can start them first. Exit code 1 when any test failed.
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const files = process.argv.slice(2);
const stream = run({
  files,
  // most test files wait on real processes and servers (browsers, CLIs, stacks): 4 keep 2 cores busy
  concurrency: 4,
  timeout: 600_000,
  // A file whose tests are all done exits even if a failed test left a handle open (a server, a
  // client): without it the suite waited forever on that file's process.
  forceExit: true,
});
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(spec).pipe(process.stdout);
