create user app login password '...' in role billing_client;
create user billing_svc login password '...' in role billing_worker;   -- DATABASE_URL of the workers
create user dba_ro login password '...' in role billing_reader;
