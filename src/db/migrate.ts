import { fileURLToPath } from 'node:url';
import { Logger, runMigrations as runGraphileWorkerMigrations } from 'graphile-worker';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { HostClient, writableUrl } from './hosts.ts';
import { defaultRoleNames, type RoleNames } from '../commands/contract.ts';
import { loadFairnessSettings, type FairnessSettings } from '../config.ts';

export const sqlDirectory = fileURLToPath(new URL('../../sql', import.meta.url));

export interface MigrateOptions {
  connectionString: string;
  /** node-pg-migrate's warnings and errors. */
  log?: (message: string) => void;
  /** Names of the four group roles; defaults from BILLING_ROLE_* and then billing_owner etc. */
  roles?: Partial<RoleNames>;
  /** Written to billing.fairness_settings; defaults from BILLING_MAX_WAITING_PER_LOGIN etc. (unset: kept). */
  fairness?: FairnessSettings;
}

export type { RoleNames };

export function roleNamesFromEnv(env: NodeJS.ProcessEnv = process.env): RoleNames {
  return {
    owner: env.BILLING_ROLE_OWNER || defaultRoleNames.owner,
    worker: env.BILLING_ROLE_WORKER || defaultRoleNames.worker,
    client: env.BILLING_ROLE_CLIENT || defaultRoleNames.client,
    reader: env.BILLING_ROLE_READER || defaultRoleNames.reader,
  };
}

/**
 * graphile-worker installs its own schema first (our roles migration grants on it and
 * billing.submit calls graphile_worker.add_job), then node-pg-migrate applies sql/ in order,
 * under its advisory lock so that replicas started together migrate once; then the owner, grants
 * and policies are applied again to whatever the schemas hold now.
 */
export async function migrate(options: MigrateOptions): Promise<string[]> {
  const log = options.log ?? (() => {});
  const connectionString = writableUrl(options.connectionString);
  // graphile-worker is given a pool of ours: its own would not understand a multi-host URL.
  const pool = new pg.Pool({ connectionString, max: 1, Client: HostClient });
  // graphile-worker wants both handlers; a lost connection makes the next query fail and say why.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  try {
    await runGraphileWorkerMigrations({ pgPool: pool, logger: quietLogger() });
  } finally {
    await pool.end();
  }
  const roles = { ...roleNamesFromEnv(), ...options.roles };
  // sql/0004_roles.sql reads the role names from these session settings.
  const client = new HostClient({ connectionString });
  await client.connect();
  let applied: Awaited<ReturnType<typeof runner>>;
  try {
    for (const [kind, name] of Object.entries(roles)) {
      await client.query('select set_config($1, $2, false)', [`pgbilling.${kind}_role`, name]);
    }
    applied = await runner({
      dbClient: client,
      dir: sqlDirectory,
      migrationsTable: 'pgbilling_migrations',
      migrationsSchema: 'public',
      direction: 'up',
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      log: () => {},
      logger: { debug: () => {}, info: () => {}, warn: (m: string) => log(m), error: (m: string) => log(m) },
    });
    await applyAccess(client);
    await applyFairness(client, options.fairness ?? loadFairnessSettings());
  } finally {
    await client.end().catch(() => {});
  }
  // The names are returned, not logged: the caller prints them (once).
  return applied.map((migration) => migration.name);
}

/**
 * Every run, not only when a migration was new: graphile-worker's migrations (run above, outside
 * ours) may have added tables that need the owner, our roles' grants and row-level-security
 * policies (sql/0009_narrow_roles.sql). Serialized on the migrations table, which only the owner
 * can lock, so replicas started together do not grant at the same moment.
 */
async function applyAccess(client: pg.Client): Promise<void> {
  await client.query('begin');
  try {
    await client.query('lock table public.pgbilling_migrations in exclusive mode');
    await client.query('select billing.apply_access()');
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  }
}

async function applyFairness(client: pg.Client, settings: FairnessSettings): Promise<void> {
  if (settings.maxWaitingPerLogin === undefined && settings.commandsPerPriorityStep === undefined) return;
  await client.query(
    `update billing.fairness_settings
     set max_waiting_per_login = coalesce($1::int8, max_waiting_per_login),
         commands_per_priority_step = coalesce($2::int4, commands_per_priority_step)`,
    [settings.maxWaitingPerLogin ?? null, settings.commandsPerPriorityStep ?? null],
  );
}

function quietLogger(): Logger {
  return new Logger(() => () => {});
}
