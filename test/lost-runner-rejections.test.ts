import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// graphile-worker's one known unhandled rejection (a stopped runner that cannot return its local
// queue's jobs) is logged and the worker goes on; any other still ends the process. Real Node
// processes, since what is at stake is whether the process survives.
const moduleUrl = new URL('../src/worker/lost-runner-rejections.ts', import.meta.url).href;
const loggerUrl = new URL('../src/logger.ts', import.meta.url).href;

function runWithRejection(message: string) {
  const script = `
    const { tolerateLostRunnerRejections } = await import(${JSON.stringify(moduleUrl)});
    const { createLogger } = await import(${JSON.stringify(loggerUrl)});
    tolerateLostRunnerRejections(createLogger('info'));
    void Promise.reject(new Error(${JSON.stringify(message)}));
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

t.test('any other unhandled rejection still ends the process', async (t) => {
  const run = runWithRejection('something else went wrong');
  t.not(run.status, 0);
  t.match(run.stderr, /something else went wrong/);
  t.notMatch(run.stdout, /still running/);
});
