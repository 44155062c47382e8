import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// graphile-worker's known unhandled rejections (a stopped runner that cannot return its local queue's
// jobs; its listener's client released twice) are logged and the worker goes on; any other still
// ends the process. Real Node processes, since what is at stake is whether the process survives.
const moduleUrl = new URL('../src/worker/graphile-rejections.ts', import.meta.url).href;
const loggerUrl = new URL('../src/logger.ts', import.meta.url).href;

/** A Node process that installs the handler, then rejects with `message` (and `frame` in its stack). */
function runWithRejection(message: string, frame?: string) {
  const script = `
    const { tolerateKnownGraphileRejections } = await import(${JSON.stringify(moduleUrl)});
    const { createLogger } = await import(${JSON.stringify(loggerUrl)});
    tolerateKnownGraphileRejections(createLogger('info'));
    const error = new Error(${JSON.stringify(message)});
    if (${JSON.stringify(frame ?? '')}) error.stack = error.message + '\\n    ' + ${JSON.stringify(frame ?? '')};
    void Promise.reject(error);
    setTimeout(() => process.stdout.write('still running\\n'), 200);`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
    timeout: 30_000,
  });
}

t.test("graphile-worker's returning-jobs rejection is a warning; the process goes on", async (t) => {
  const run = runWithRejection(
    'Error occurred whilst returning jobs from local queue to database queue: Connection terminated unexpectedly',
  );
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /"level":40[^\n]*"msg":"a stopped queue runner could not return its prefetched jobs/);
  t.match(run.stdout, /still running/);
});

t.test(
  "pg-pool's double release from graphile-worker's listener is a warning; from elsewhere it is fatal",
  async (t) => {
    const doubleRelease = 'Release called on client which has already been released to the pool.';
    const fromGraphile = runWithRejection(
      doubleRelease,
      'at release (/app/node_modules/graphile-worker/dist/main.js:1:1)',
    );
    t.equal(fromGraphile.status, 0, fromGraphile.stderr);
    t.match(fromGraphile.stdout, /"level":40[^\n]*"msg":"graphile-worker's job listener connection was released twice/);
    const fromOurs = runWithRejection(doubleRelease, 'at release (/app/src/ledger/apply.ts:1:1)');
    t.not(fromOurs.status, 0);
    t.notMatch(fromOurs.stdout, /still running/);
  },
);

t.test('any other unhandled rejection still ends the process', async (t) => {
  const run = runWithRejection('something else went wrong');
  t.not(run.status, 0);
  t.match(run.stderr, /something else went wrong/);
  t.notMatch(run.stdout, /still running/);
});
