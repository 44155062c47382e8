// A worker's tasks run on the runtime they were built with (makeCommandTasks in
// src/worker/command-task.ts), not on a process-wide one: two workers in one process, each on a
// database of its own, apply each database's commands in that database.
import t from 'tap';
import { createTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/wait.ts';
import { startTestWorker } from './helpers/worker.ts';

t.setTimeout(180_000);

t.test("two workers in one process: each applies its own database's commands there", async (t) => {
  const first = await createTestDatabase('deps_first');
  const second = await createTestDatabase('deps_second');
  t.teardown(() => Promise.all([first.drop(), second.drop()]));
  const firstWorker = await startTestWorker(first);
  t.teardown(() => firstWorker.stop());
  // Started second: with a process-wide runtime, the first worker's tasks would apply on this one's pool.
  const secondWorker = await startTestWorker(second);
  t.teardown(() => secondWorker.stop());

  for (const [database, id] of [
    [first, 'first-open'],
    [second, 'second-open'],
  ] as const)
    await database.query(
      "select billing.submit('open_account', json_build_object('id', $1::text, 'account', $1::text))",
      [id],
    );
  const resultIn = async (database: typeof first, id: string) =>
    (await database.query<{ code: string }>('select code from billing.operations where id = $1', [id])).rows[0]?.code;

  t.equal(await waitFor('first-open in the first database', () => resultIn(first, 'first-open'), 60_000), 'ok');
  t.equal(await waitFor('second-open in the second database', () => resultIn(second, 'second-open'), 60_000), 'ok');
  t.equal(await resultIn(second, 'first-open'), undefined, "the first database's command wrote nothing in the second");
  t.equal(await resultIn(first, 'second-open'), undefined, "nor the second's in the first");
});
