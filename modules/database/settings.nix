# postgresql.conf settings of the Emily database as pure data (builtins only), so that
# tests/host/test_database_settings.py hands them to a real Postgres to validate.
# ramGiB: installed RAM; dbName: the database (and role) pg_partman maintains.
# For 128 GiB: shared_buffers 8 GB, effective_cache_size 96 GB, maintenance_work_mem 16 GB.
{ ramGiB, dbName }:

let
  ramMB = ramGiB * 1024;
  mb = n: "${toString n}MB";
in
{
  password_encryption = "scram-sha-256";
  max_connections = 200;

  # memory: the ZFS ARC (max 100 GiB) is the big cache, so shared_buffers stays modest;
  # effective_cache_size counts both.
  shared_buffers = mb (ramMB / 16);
  effective_cache_size = mb (ramMB * 3 / 4);
  work_mem = mb (ramMB / 2048);
  # HNSW builds are fast only while the graph fits in maintenance_work_mem
  maintenance_work_mem = mb (ramMB / 8);
  max_worker_processes = 24;
  max_parallel_workers = 16;
  max_parallel_workers_per_gather = 4;
  max_parallel_maintenance_workers = 8;

  # storage: HDD raidz2, but metadata and small blocks on NVMe and a warm ARC
  random_page_cost = 1.5;
  effective_io_concurrency = 32;

  # WAL: ZFS is copy-on-write with 16K records, so torn pages cannot happen
  # (full_page_writes off), and recycling or zero-filling WAL files only costs I/O.
  wal_level = "replica";
  wal_compression = "zstd";
  wal_buffers = "64MB";
  full_page_writes = false;
  wal_init_zero = false;
  wal_recycle = false;
  min_wal_size = "2GB";
  max_wal_size = "16GB";
  checkpoint_timeout = "15min";
  checkpoint_completion_target = 0.9;
  # the WAL writer flushes every 10 ms, so ingesting backends stop writing and syncing
  # WAL themselves (measured on the embedded server: see README, memory ingest)
  wal_writer_delay = "10ms";

  shared_preload_libraries = "pg_partman_bgw,pg_stat_statements";
  "pg_partman_bgw.dbname" = dbName;
  "pg_partman_bgw.role" = dbName;
  "pg_partman_bgw.interval" = 3600;
}
