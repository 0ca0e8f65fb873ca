# emily-memory: the tiered memory service (`emily serve memory`). Postgres over the unix
# socket with peer auth (the unit runs as the `emily` user, which is the database role of
# modules/database.nix), Zenoh as a client of the host's zenohd, tier files and access
# statistics under emily.stateDir, /metrics on localhost. The HTTP API (/v1/memories,
# /healthz) listens on localhost:8463; its optional bearer token is a file, on the host a
# sops secret (`apiKeySecret`). The unit itself comes from ./unit.nix, the HTTP API's
# options from ./lib/http-api.nix.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.memory;
  unit = import ./unit.nix { inherit config lib pkgs; };
  http = import ./lib/http-api.nix { inherit lib; };
  db = config.emily.database;
  database = lib.optional db.enable "emily-postgres-setup.service";
  onGpu = (cfg.settings.device or "cpu") == "cuda";
  token = http.token {
    service = "memory";
    inherit cfg config options;
  };
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
  // http.options {
    service = "memory";
    port = 8463;
    portDescription = "Port of the HTTP API (/v1/memories, /healthz); 0 turns it off.";
  }
  // http.metrics { port = 9461; }
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

    maxBodyBytes = lib.mkOption {
      type = lib.types.ints.positive;
      default = 8388608;
      description = "Largest HTTP request body in bytes; a larger one gets 413.";
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable (
      lib.mkMerge [
        (unit.config {
          service = "memory";
          inherit cfg;
          description = "Emily memory service";
          settings = {
            dsn = "postgresql:///${cfg.database}?host=${cfg.socketDir}";
            metrics_port = cfg.metricsPort;
            metrics_addr = cfg.metricsAddress;
            http_port = cfg.port;
            http_addr = cfg.listenAddress;
            http_max_body_bytes = cfg.maxBodyBytes;
          }
          // token.settings;
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
        })
        {
          assertions = token.assertions ++ [
            {
              assertion = cfg.port == 0 || cfg.port != cfg.metricsPort;
              message = "services.emily.memory.port and metricsPort must differ.";
            }
          ];
        }
      ]
    ))
    token.secrets
  ];
}
