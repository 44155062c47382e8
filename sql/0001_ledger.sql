-- Up Migration
-- The ledger. Every rule that keeps money right is also a constraint here, so that no code path,
-- ours or a DBA's, can commit a negative balance or an orphan entry.

create schema billing;

create table billing.accounts (
  account text primary key
    constraint account_format check (account ~ '^[A-Za-z0-9_.:@-]{1,64}$'),
  currency text not null
    constraint currency_format check (currency ~ '^[A-Z]{3}$'),
  balance bigint not null default 0,
  held bigint not null default 0
    constraint held_not_negative check (held >= 0),
  available bigint not null generated always as (balance - held) stored,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint available_not_negative check (balance - held >= 0)
);

-- One result row per command id, applied or rejected. `seq` is the consumers' cursor; it is handed
-- out under one transaction-level advisory lock taken just before the insert and held to commit, so
-- seq order is commit order and `where seq > $cursor` never skips a row that commits late.
create table billing.operations (
  id text primary key
    constraint id_length check (char_length(id) between 1 and 128),
  seq bigint generated always as identity
    constraint operations_seq_key unique,
  type text not null
    constraint type_known check (type in ('open_account', 'credit', 'debit', 'transfer', 'hold',
                                          'capture', 'release', 'expire')),
  status text not null
    constraint status_known check (status in ('applied', 'rejected')),
  code text not null,
  message text,
  request jsonb not null,
  -- sha-256 of the command type and its canonical payload: a replay matches, a reuse does not.
  fingerprint text not null,
  job_id bigint,
  -- the balances each touched account was left with by this command: [{account, balance, held}]
  balances jsonb not null default '[]',
  created_at timestamptz not null default now(),
  constraint applied_means_ok check ((status = 'applied') = (code = 'ok'))
);

create table billing.holds (
  hold text primary key
    constraint hold_length check (char_length(hold) between 1 and 128),
  account text not null references billing.accounts (account),
  amount bigint not null
    constraint amount_positive check (amount > 0),
  status text not null default 'active'
    constraint status_known check (status in ('active', 'captured', 'released', 'expired')),
  captured bigint not null default 0
    constraint captured_within_hold check (captured between 0 and amount),
  captured_to text references billing.accounts (account),
  expires_at timestamptz,
  operation_id text not null,
  closed_by text,
  created_at timestamptz not null default now(),
  closed_at timestamptz,
  constraint closed_has_closer check ((status = 'active') = (closed_by is null))
);

create index holds_account_active on billing.holds (account) where status = 'active';

-- The journal: one row per change of one account. Entry ids increase in the order changes were
-- applied to an account because each account row is locked from its change until commit.
create table billing.entries (
  id bigint generated always as identity primary key,
  -- deferred: the operation row is written last in the transaction, right before commit
  operation_id text not null references billing.operations (id) deferrable initially deferred,
  account text not null references billing.accounts (account),
  balance_delta bigint not null,
  held_delta bigint not null,
  balance_after bigint not null,
  held_after bigint not null,
  constraint entry_changes_something check (balance_delta <> 0 or held_delta <> 0),
  constraint entry_after_not_negative check (held_after >= 0 and balance_after - held_after >= 0)
);

create index entries_account_id on billing.entries (account, id);
create index entries_operation on billing.entries (operation_id);

-- A command id reused with another payload. The first result stays as it was; the reuse is kept
-- here so that it is reported durably, not only by a notification that nobody may be listening to.
create table billing.id_conflicts (
  conflict_id bigint generated always as identity primary key,
  id text not null,
  type text not null,
  request jsonb not null,
  job_id bigint,
  created_at timestamptz not null default now()
);

create index id_conflicts_id on billing.id_conflicts (id);

comment on table billing.operations is 'One result per command id. Read new results with: where seq > $cursor order by seq.';
comment on table billing.entries is 'Journal: per account, entries in id order chain from zero to the account row.';

-- Down Migration
drop schema billing cascade;
