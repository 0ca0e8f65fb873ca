# PostgreSQL for the memory service (tier L3): pgvector and pg_partman, tuned for 128 GiB
# of RAM on raidz2 HDDs with an NVMe special vdev. The schema is NOT here: the memory
# service applies python/src/emily/memory/migrations/*.sql itself.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.emily.database;
  net = config.emily.network;
  servicesVlan = if net.enable then "${net.vlans.services.prefix}.0/24" else null;
  # memory settings in MB from RAM: for 128 GiB, shared_buffers 8 GB, effective_cache_size
  # 96 GB (the ZFS ARC is the big cache), maintenance_work_mem 16 GB
  ramMB = cfg.ramGiB * 1024;
  mb = n: "${toString n}MB";
in
{
  options.emily.database = {
    enable = lib.mkEnableOption "PostgreSQL with pgvector and pg_partman";

    package = lib.mkPackageOption pkgs "postgresql_17" { };

    name = lib.mkOption {
      type = lib.types.str;
      default = "emily";
      description = "Database and role of the memory service (the role owns the database).";
    };

    ramGiB = lib.mkOption {
      type = lib.types.ints.positive;
      default = config.emily.storage.ramGiB;
      defaultText = lib.literalExpression "config.emily.storage.ramGiB";
      description = "RAM (GiB) the memory settings are sized from (128 on the host).";
    };

    localhostTcp = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Also accept TCP (scram) from localhost. Off: local clients use the unix socket
        with peer authentication (the memory service does), and TCP is accepted only
        from the services VLAN.
      '';
    };

    passwordFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "File with the role's password, for scram over TCP (sops: modules/secrets.nix).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.postgresql = {
      enable = true;
      inherit (cfg) package;
      extensions = ps: [
        ps.pgvector
        ps.pg_partman
      ];
      ensureDatabases = [ cfg.name ];
      ensureUsers = [
        {
          inherit (cfg) name;
          ensureDBOwnership = true;
        }
      ];
      # local: peer (unix user = role); TCP: scram, from the services VLAN only
      # (and from localhost if localhostTcp)
      authentication = lib.mkForce (
        ''
          local all all peer
        ''
        + lib.optionalString cfg.localhostTcp ''
          host all all 127.0.0.1/32 scram-sha-256
          host all all ::1/128 scram-sha-256
        ''
        + lib.optionalString (servicesVlan != null) ''
          host ${cfg.name} ${cfg.name} ${servicesVlan} scram-sha-256
        ''
      );
      settings = {
        listen_addresses = lib.mkForce (
          lib.concatStringsSep "," (
            lib.optional cfg.localhostTcp "127.0.0.1"
            ++ lib.optional net.enable "${net.vlans.services.prefix}.1"
          )
        );
        password_encryption = "scram-sha-256";
        max_connections = 200;

        # memory: the ZFS ARC (max 100 GiB) is the big cache, so shared_buffers stays
        # modest; effective_cache_size counts both.
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
        # (full_page_writes off) and recycling/zero-filling WAL files only costs I/O.
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

        shared_preload_libraries = "pg_partman_bgw,pg_stat_statements";
        "pg_partman_bgw.dbname" = cfg.name;
        "pg_partman_bgw.role" = cfg.name;
        "pg_partman_bgw.interval" = 3600;
      };
    };

    # Extensions that need a superuser, created once in the service's database.
    systemd.services.emily-postgres-setup = {
      description = "Create pgvector and pg_partman in the Emily database";
      after = [
        "postgresql.service"
        "postgresql-setup.service"
      ];
      requires = [
        "postgresql.service"
        "postgresql-setup.service"
      ];
      wantedBy = [ "multi-user.target" ];
      path = [ config.services.postgresql.finalPackage ];
      serviceConfig = {
        Type = "oneshot";
        User = "postgres";
        RemainAfterExit = true;
        ExecStart = "${lib.getExe' config.services.postgresql.finalPackage "psql"} -v ON_ERROR_STOP=1 -d ${cfg.name} -f ${./database/extensions.sql}";
      };
    };

    # The role's password (scram) from a file; re-run when the secret rotates.
    systemd.services.emily-postgres-passwords = lib.mkIf (cfg.passwordFile != null) {
      description = "Set the Emily role's Postgres password from its secret file";
      after = [
        "postgresql.service"
        "postgresql-setup.service"
      ];
      requires = [
        "postgresql.service"
        "postgresql-setup.service"
      ];
      wantedBy = [ "multi-user.target" ];
      path = [ config.services.postgresql.finalPackage ];
      serviceConfig = {
        Type = "oneshot";
        User = "postgres";
        RemainAfterExit = true;
      };
      # psql reads the file itself (\set with backticks), so the password appears on
      # no command line; :'pw' quotes it as a literal.
      script = ''
        psql -v ON_ERROR_STOP=1 -d postgres <<'SQL'
        \set pw `cat ${lib.escapeShellArg cfg.passwordFile}`
        ALTER ROLE "${cfg.name}" PASSWORD :'pw';
        SQL
      '';
    };
  };
}
