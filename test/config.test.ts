// Every setting is checked when it is read, and refused with a message that names it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ConfigError, defaultHttpPort, loadConfig } from '../src/config.ts';

t.test('defaults: nothing set but DATABASE_URL', async (t) => {
  const config = loadConfig({ DATABASE_URL: 'postgres://billing@db:5432/billing' });
  t.match(config, {
    databaseUrl: 'postgres://billing@db:5432/billing',
    httpPort: defaultHttpPort,
    httpPortExplicit: false,
    httpHost: '127.0.0.1',
    metricsIntervalMs: 5_000,
    logLevel: 'info',
  });
  t.not(defaultHttpPort, 9090, "not the Prometheus server's own port");
  t.ok(defaultHttpPort >= 9100 && defaultHttpPort <= 9999, "in the exporters' range");
  t.match(loadConfig({ BILLING_HTTP_PORT: '9500' }), { httpPort: 9500, httpPortExplicit: true });
  t.match(loadConfig({ DATABASE_URL: 'postgresql:///billing?host=/var/run/postgresql' }), {
    databaseUrl: 'postgresql:///billing?host=/var/run/postgresql',
  });
});

t.test('each bad setting is refused by name', async (t) => {
  const bad: [string, string, RegExp][] = [
    [
      'DATABASE_URL',
      'not a url',
      /^DATABASE_URL must be a URL like postgres:\/\/user:password@host:5432\/database, got "not a url"$/,
    ],
    [
      'DATABASE_URL',
      'mysql://root:secret@db/x',
      /^DATABASE_URL must be a URL like .*got "mysql:\/\/root:\*\*\*@db\/x"$/,
    ],
    [
      'LOG_LEVEL',
      'verbose',
      /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"$/,
    ],
    ['BILLING_HTTP_PORT', '70000', /^BILLING_HTTP_PORT must be a whole number from 0 to 65535, got "70000"$/],
    ['BILLING_HTTP_HOST', 'a b', /^BILLING_HTTP_HOST must be an address to listen on/],
    [
      'BILLING_METRICS_INTERVAL_MS',
      '50',
      /^BILLING_METRICS_INTERVAL_MS must be a whole number from 100 to 3600000, got "50"$/,
    ],
    ['BILLING_CONCURRENCY', '1.5', /^BILLING_CONCURRENCY must be a whole number from 1 to 10000/],
    ['BILLING_BATCH_SIZE', '0', /^BILLING_BATCH_SIZE /],
    ['BILLING_BATCHES_IN_FLIGHT', 'x', /^BILLING_BATCHES_IN_FLIGHT /],
    ['BILLING_BATCH_WAIT_MS', '-1', /^BILLING_BATCH_WAIT_MS /],
    ['BILLING_POOL_SIZE', '1', /^BILLING_POOL_SIZE /],
    ['BILLING_DEFAULT_CURRENCY', 'usd', /^BILLING_DEFAULT_CURRENCY must be three capital letters, got "usd"$/],
    ['BILLING_STATEMENT_TIMEOUT_MS', 'soon', /^BILLING_STATEMENT_TIMEOUT_MS /],
    ['BILLING_LOCK_TIMEOUT_MS', '1e3', /^BILLING_LOCK_TIMEOUT_MS /],
    ['BILLING_IDLE_IN_TRANSACTION_TIMEOUT_MS', ' 5', /^BILLING_IDLE_IN_TRANSACTION_TIMEOUT_MS /],
    ['BILLING_RECOVERY_INTERVAL_MS', '10', /^BILLING_RECOVERY_INTERVAL_MS must be a whole number from 100 to 60000/],
    [
      'BILLING_NOTIFY_QUEUE_LIMIT_PERCENT',
      '0',
      /^BILLING_NOTIFY_QUEUE_LIMIT_PERCENT must be a whole number from 1 to 100/,
    ],
    ['BILLING_NOTIFY_WATCHDOG_PERCENT', '101', /^BILLING_NOTIFY_WATCHDOG_PERCENT must be a whole number from 1 to 100/],
    ['BILLING_NOTIFY_PIN_GRACE_MS', 'x', /^BILLING_NOTIFY_PIN_GRACE_MS /],
    ['BILLING_NOTIFY_WATCHDOG_INTERVAL_MS', '50', /^BILLING_NOTIFY_WATCHDOG_INTERVAL_MS /],
    ['BILLING_WAKE_SPACING_MS', '1001', /^BILLING_WAKE_SPACING_MS /],
  ];
  for (const [name, value, message] of bad) {
    t.throws(() => loadConfig({ [name]: value }), { name: 'ConfigError', message }, `${name}=${value}`);
  }
  t.ok(new ConfigError('x') instanceof Error);
});

t.test('npm test says which server it chose', async (t) => {
  const script = fileURLToPath(new URL('../scripts/test.ts', import.meta.url));
  const { DATABASE_URL: _unused, ...rest } = process.env;
  const run = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [script, '--which-server'], { env, encoding: 'utf8' });
  const named = run({ ...rest, DATABASE_URL: 'postgres://tester:secret@db.example:5432/x' });
  t.equal(named.status, 0);
  t.equal(
    named.stdout,
    '# tests run on DATABASE_URL: postgres://tester:***@db.example:5432/x (each test file makes a database of its own there)\n',
  );
  const refused = run({ ...rest, DATABASE_URL: 'not a url' });
  t.equal(refused.status, 1);
  t.match(refused.stderr, /^npm test: DATABASE_URL must be a URL like postgres:/);
  const unset = run(rest);
  t.equal(unset.status, 0);
  t.match(
    unset.stdout,
    /^# tests run on (the local PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:5432\/postgres|an embedded PostgreSQL started for them)/,
  );
});
