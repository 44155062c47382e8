#!/bin/sh
# The workers' login: a member of the billing_worker group role only (docs/security.md), never the
# superuser. The postgres image runs this once, when it initializes an empty data volume; the
# migration then finds billing_worker existing and grants it its rights (sql/0004_roles.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v worker_user="${BILLING_WORKER_USER:-billing_svc}" -v worker_password="${BILLING_WORKER_PASSWORD:-billing-worker}" <<'SQL'
select 'create role billing_worker nologin'
where not exists (select from pg_roles where rolname = 'billing_worker') \gexec
create role :"worker_user" login password :'worker_password' in role billing_worker;
SQL
