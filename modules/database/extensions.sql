-- Extensions of the Emily database that need a superuser to create. Idempotent.
-- (The memory service's migrations also create `vector`; this makes it exist before
-- the service connects as the unprivileged owner role.)
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
