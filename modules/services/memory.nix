# emily-memory: the tiered memory service (`emily serve memory`). Postgres over the unix
# socket with peer auth (the unit runs as the `emily` user, which is the database role of
# modules/database.nix), Zenoh as a client of the host's zenohd, tier files and access
# statistics under emily.stateDir, /metrics on localhost. The unit itself comes from
# ./unit.nix.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.memory;
  unit = import ./unit.nix { inherit config lib pkgs; };
  db = config.emily.database;
  database = lib.optional db.enable "emily-postgres-setup.service";
  onGpu = (cfg.settings.device or "cpu") == "cuda";
in
{
  options.services.emily.memory = unit.options {
    service = "memory";
    description = "the Emily memory service (tiered memory over Postgres + pgvector)";
    defaults = {
      user = db.name;
      # the L1 RAM tier, the in-process index and MiniLM; Postgres has its own budget
      memoryHigh = "12G";
      memoryMax = "16G";
      # recall is on the reflex-to-deliberation path: ahead of batch work under contention
      cpuWeight = 200;
    };
    example = {
      l0_capacity = 65536;
      hnsw_m = 24;
      device = "cuda";
    };
  }
  // {
    database = lib.mkOption {
      type = lib.types.str;
      default = db.name;
      defaultText = lib.literalExpression "config.emily.database.name";
      description = "Postgres database holding the episodes (tier L3).";
    };

    socketDir = lib.mkOption {
      type = lib.types.str;
      default = "/run/postgresql";
      description = "Directory of Postgres's unix socket.";
    };

    metricsPort = lib.mkOption {
      type = lib.types.port;
      default = 9461;
      description = "Port of /metrics (Prometheus).";
    };

    metricsAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address /metrics listens on.";
    };
  };

  config = lib.mkIf cfg.enable (
    unit.config {
      service = "memory";
      inherit cfg;
      description = "Emily memory service";
      settings = {
        dsn = "postgresql:///${cfg.database}?host=${cfg.socketDir}";
        metrics_port = cfg.metricsPort;
        metrics_addr = cfg.metricsAddress;
      };
      extraEnvironment = {
        # the MiniLM model ships in the package; never reach for the Hub
        HF_HUB_OFFLINE = "1";
        TRANSFORMERS_OFFLINE = "1";
        HF_HOME = "/var/cache/emily-memory";
      };
      after = [ "postgresql.service" ] ++ database;
      requires = [ "postgresql.service" ] ++ database;
      gpu = onGpu;
      serviceConfig.CacheDirectory = "emily-memory";
    }
  );
}
