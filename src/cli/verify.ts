import { Command } from 'commander';
import { findDatabase, loadCliConfig, toJson } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { printable } from './output.ts';

export function verifyCommand(): Command {
  const command = new Command('verify')
    .summary('check the ledger (exit 1 on any breach)')
    .description(
      'Check the ledger in one snapshot: journal chains, balances = journal, nothing negative, holds = held, ' +
        'constraints in place, no hold left active past its expiry, no expiry job failing; warn about stuck jobs. Exit 1 on any breach; warnings alone exit 0.',
    )
    .option('--json', 'print the report as JSON')
    .action(async (options: { json?: boolean }) => {
      const { url } = await findDatabase(loadCliConfig());
      const [{ sql }, { createKysely }, { createPool }, { verifyLedger }] = await Promise.all([
        import('kysely'),
        import('../db/kysely.ts'),
        import('../db/pool.ts'),
        import('../ledger/verify.ts'),
      ]);
      const db = createKysely(createPool({ connectionString: url, max: 2, applicationName: 'pg-billing-verify' }));
      try {
        const report = await verifyLedger(db);
        // Which server was read: with several hosts in DATABASE_URL it may be a standby or the new primary.
        const { rows } = await sql<{ address: string | null; port: number | null; standby: boolean }>`
          select host(inet_server_addr()) as address, inet_server_port() as port, pg_is_in_recovery() as standby`.execute(
          db,
        );
        const where = rows[0]!;
        const server = `${where.address ?? 'local socket'}${where.port ? `:${where.port}` : ''} (${where.standby ? 'a standby' : 'the primary'})`;
        if (options.json) {
          console.log(toJson({ ...report, server }));
        } else {
          for (const check of report.checks) {
            const mark = check.violations === 0 ? 'ok     ' : check.severity === 'breach' ? 'BREACH ' : 'warning';
            const count = check.violations === 0 ? '' : ` (${check.violations})`;
            console.log(`${mark}  ${check.name}${count}`);
            for (const example of check.examples) console.log(`           ${printable(example)}`);
          }
          console.log(
            `${report.ok ? 'verify: ok' : 'verify: BREACH'} (${report.accounts} accounts, ${report.entries} entries, ${report.operations} results) on ${server}`,
          );
        }
        process.exitCode = report.ok ? exitCodes.ok : exitCodes.error;
      } finally {
        await db.destroy();
      }
    });
  return withExamples(command, ['billing verify', 'billing verify --json']);
}
