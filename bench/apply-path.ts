import { parseCommand } from '../src/commands/parse.ts';
import { createPool } from '../src/db/pool.ts';
import { applyBatch } from '../src/ledger/apply.ts';
import { databaseSeconds, type BenchDatabase } from './database.ts';
import { randomTransfer } from './workload.ts';

/**
 * The service's own apply path with one transfer per transaction, no queue, `connections` clients
 * in parallel: src/ledger/apply.ts's transaction for a batch of one transfer, so the SQL is the
 * worker's to the byte. It is NOT the anchor (bench/anchor.ts is): it shows what the ledger's
 * transaction costs when nothing is grouped, i.e. what group commit buys.
 */
export async function applyPathOneByOne(bench: BenchDatabase, seconds: number, connections: number): Promise<number> {
  const pool = createPool({ connectionString: bench.url, max: connections, applicationName: 'pg-billing-bench-apply' });
  let committed = 0;
  let n = 0;
  const started = await databaseSeconds(bench.pool);
  const deadline = Date.now() + seconds * 1000;
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (Date.now() < deadline) {
          const id = `apply:${n++}`;
          const parsed = parseCommand({
            task: 'transfer',
            payload: { id, ...randomTransfer(bench.accounts) },
            defaultId: id,
            defaultCurrency: 'USD',
          });
          const applied = await applyBatch(pool, [{ parsed, jobId: null }]);
          if (applied.outcomes[0]?.kind !== 'recorded') throw new Error(`transfer ${id} was not recorded`);
          committed += 1;
        }
      }),
    );
    const ended = await databaseSeconds(bench.pool);
    return committed / (ended - started);
  } finally {
    await pool.end();
  }
}
