import path from 'node:path';
import { Command } from 'commander';
import { redactUrl } from '../config.ts';
import type { EmbeddedDatabase } from '../embedded/embedded-default.ts';
import type { RunningWorker } from '../worker/run-worker.ts';
import { embeddedDataDir, loadCliConfig, projectRoot } from './context.ts';
import { exitCodes } from './exit-codes.ts';
import { withExamples } from './help.ts';
import { untilStopped } from './signals.ts';
import { parseWhole } from './submit-command.ts';

export const readyLine = 'pg-billing is ready';

export function startCommand(): Command {
  const command = new Command('start')
    .summary('run everything: embedded PostgreSQL (without DATABASE_URL), migrations, a worker')
    .description(
      'What `npm start` runs: the whole service in one process. Without DATABASE_URL it starts an embedded ' +
        'PostgreSQL (data under .data/postgres, or --data-dir / BILLING_DATA_DIR), migrates, starts a worker and prints ' +
        'how to submit commands from another terminal. With DATABASE_URL it uses that server. Ctrl-C (or SIGTERM) stops ' +
        'the worker and the embedded server cleanly; so does SIGHUP (the terminal closed). It keeps running across a ' +
        'PostgreSQL restart: the worker gets a fresh queue runner when the server answers again.',
    )
    .option(
      '--data-dir <path>',
      'folder of the embedded PostgreSQL (default: BILLING_DATA_DIR, else <project>/.data/postgres)',
    )
    .option(
      '--embedded-port <port>',
      'preferred port of the embedded PostgreSQL (default: the last one used, else 54329; a free one if taken)',
      parseWhole,
    )
    .action(async (options: { dataDir?: string; embeddedPort?: number }) => {
      const config = loadCliConfig();
      const [{ createLogger }, { migrate }, { startWorker }] = await Promise.all([
        import('../logger.ts'),
        import('../db/migrate.ts'),
        import('../worker/run-worker.ts'),
      ]);
      const logger = createLogger(config.logLevel);
      let embedded: EmbeddedDatabase | undefined;
      let dataDir: string | undefined;
      let url = config.databaseUrl;
      if (!url) {
        dataDir = embeddedDataDir(config, options.dataDir);
        const { startEmbeddedDatabase } = await import('../embedded/embedded-default.ts');
        embedded = await startEmbeddedDatabase({
          dataDir,
          database: 'billing',
          log: logger,
          ...(options.embeddedPort === undefined ? {} : { port: options.embeddedPort }),
        });
        url = embedded.databaseUrl;
      }
      let worker: RunningWorker;
      try {
        const applied = await migrate({ connectionString: url });
        logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
        worker = await startWorker({ ...config, databaseUrl: url }, logger, (error) => {
          logger.fatal({ err: error }, 'worker stopped working: exiting');
          void Promise.race([embedded?.stop(), new Promise((resolve) => setTimeout(resolve, 10_000))]).finally(() =>
            process.exit(exitCodes.workerFatal),
          );
        });
      } catch (error) {
        await embedded?.stop();
        throw error;
      }
      console.log(banner({ url, embedded, dataDir, httpPort: worker.httpPort, httpHost: worker.httpHost }));
      process.exitCode = await untilStopped(
        async () => {
          await worker.stop();
          logger.info('worker stopped');
          await embedded?.stop();
        },
        (message) => logger.info(message),
      );
    });
  return withExamples(command, [
    'npm start',
    'DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing npm start',
    'billing start --data-dir /tmp/billing-pg',
  ]);
}

interface BannerOptions {
  url: string;
  embedded: EmbeddedDatabase | undefined;
  dataDir: string | undefined;
  httpPort: number | undefined;
  httpHost: string | undefined;
}

function banner(options: BannerOptions): string {
  const { url, embedded, dataDir, httpPort, httpHost } = options;
  const defaultDir = path.join(projectRoot, '.data', 'postgres');
  // The CLI in another terminal finds the embedded server through its data folder.
  const env = embedded ? (dataDir && path.resolve(dataDir) !== defaultDir ? `BILLING_DATA_DIR=${dataDir} ` : '') : '';
  const billing = `${env}npx billing`;
  const where = embedded
    ? `embedded PostgreSQL ${embedded.shared ? '(shared with another npm start) ' : ''}at ${url}, data in ${embedded.pgdata}`
    : `PostgreSQL at ${redactUrl(url)} (DATABASE_URL)`;
  // The address the server is bound to, as the OS reports it; a wildcard one is reached on 127.0.0.1 here.
  const wildcard = httpHost === '0.0.0.0' || httpHost === '::';
  const linkHost = wildcard ? '127.0.0.1' : httpHost?.includes(':') ? `[${httpHost}]` : httpHost;
  const metrics =
    httpPort === undefined
      ? 'off'
      : `http://${linkHost}:${httpPort}/metrics  (also /healthz, /readyz; listening on ${httpHost?.includes(':') ? `[${httpHost}]` : httpHost}:${httpPort})`;
  return `
${readyLine}: a worker is running on ${where}.
  metrics: ${metrics}

In another terminal, in this folder${embedded ? ' (the CLI finds this server by itself)' : ', with the same DATABASE_URL'}:
${examples(billing)}
  psql ${embedded ? `'${url}'` : '"$DATABASE_URL"'} -c "select billing.submit('credit', json_build_object('account', 'alice', 'amount', '5'))"

Ctrl-C stops the worker${embedded && !embedded.shared ? ' and the embedded PostgreSQL' : ''}.
`;
}

function examples(billing: string): string {
  const lines: [string, string][] = [
    ['demo', 'the original task: accounts 1 and 2, credit 777, transfer 111'],
    ['open-account alice', ''],
    ['credit alice 1000', 'waits for the result; exit 0 applied, 2 rejected'],
    ['watch', 'prints every result as it commits'],
    ['balance alice', ''],
  ];
  const width = Math.max(...lines.map(([command]) => command.length));
  return lines
    .map(([command, comment]) => `  ${billing} ${command.padEnd(width)}${comment ? `   # ${comment}` : ''}`.trimEnd())
    .join('\n');
}
