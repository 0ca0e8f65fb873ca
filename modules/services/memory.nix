# emily-memory: the tiered memory service (`emily serve memory`). Postgres over the unix
# socket with peer auth (the unit runs as the `emily` user, which is the database role of
# modules/database.nix), Zenoh in client mode to the host's zenohd, tier files and access
# statistics in its StateDirectory, /metrics on localhost.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.memory;
  busOptions = import ./bus-options.nix { inherit lib config; };
  hardening = import ./hardening.nix;
  db = config.emily.database;
  # bools as true/false (emily.config reads those), everything else as its string
  str = v: if builtins.isBool v then lib.boolToString v else toString v;
  env = lib.mapAttrs (_: str) (
    {
      EMILY_MEMORY__DSN = "postgresql:///${cfg.database}?host=${cfg.socketDir}";
      EMILY_MEMORY__METRICS_PORT = cfg.metricsPort;
      EMILY_MEMORY__METRICS_ADDR = cfg.metricsAddress;
      EMILY_BUS__MODE = "client";
      EMILY_BUS__NODE = cfg.node;
      EMILY_BUS__CONNECT = builtins.toJSON [ cfg.router ];
      EMILY_BUS__LISTEN = "[]";
      # the MiniLM model ships in the package; never reach for the Hub
      HF_HUB_OFFLINE = 1;
      TRANSFORMERS_OFFLINE = 1;
      HF_HOME = "/var/cache/emily-memory";
    }
    // lib.mapAttrs' (k: lib.nameValuePair "EMILY_MEMORY__${lib.toUpper k}") cfg.settings
  );
  database = lib.optional db.enable "emily-postgres-setup.service";
  router = lib.optional config.services.zenohd.enable "zenohd.service";
  onGpu = (cfg.settings.device or "cpu") == "cuda";
in
{
  options.services.emily.memory = busOptions "memory" // {
    enable = lib.mkEnableOption "the Emily memory service (tiered memory over Postgres + pgvector)";

    package = lib.mkPackageOption pkgs "emily" { };

    user = lib.mkOption {
      type = lib.types.str;
      default = db.name;
      defaultText = lib.literalExpression "config.emily.database.name";
      description = "Unix user of the unit; peer auth maps it to the Postgres role of that name.";
    };

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

    settings = lib.mkOption {
      type = lib.types.attrsOf (
        lib.types.oneOf [
          lib.types.str
          lib.types.int
          lib.types.bool
          lib.types.float
        ]
      );
      default = { };
      example = {
        l0_capacity = 65536;
        hnsw_m = 24;
        device = "cuda";
      };
      description = "More `[memory]` settings (emily/memory/config.py), as EMILY_MEMORY__<NAME>.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
    };
    users.groups.${cfg.user} = { };

    systemd.services.emily-memory = {
      description = "Emily memory service";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
        "postgresql.service"
      ]
      ++ database
      ++ router;
      wants = [ "network-online.target" ] ++ router;
      requires = [ "postgresql.service" ] ++ database;
      environment = env;
      serviceConfig = hardening // {
        ExecStart = "${lib.getExe cfg.package} serve memory";
        User = cfg.user;
        Group = cfg.user;
        Restart = "on-failure";
        RestartSec = 5;
        # the model loads and warm-up reads L0/L1 back: give it time
        TimeoutStartSec = 300;
        StateDirectory = "emily-memory";
        StateDirectoryMode = "0700";
        CacheDirectory = "emily-memory";
        UMask = "0077";
        # CUDA needs /dev/nvidia*; ProtectClock would add a DeviceAllow list that hides them
        PrivateDevices = !onGpu;
        ProtectClock = !onGpu;
      };
    };
  };
}
