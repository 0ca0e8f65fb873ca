# emily-cognition: the cognitive cycle (spiking reflex, global workspace, active
# inference, allostasis) over Zenoh, plus /v1/observe, /metrics and /healthz on
# localhost:8462 (`emily serve cognition`). A client of the host's zenohd; it orders
# after the memory and inference units when they are enabled and runs without them
# otherwise (the cycle degrades: the reflex still answers). The reflex is trained on
# first start and cached in the StateDirectory.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.cognition;
  busOptions = import ./bus-options.nix { inherit lib config; };
  hardening = import ./hardening.nix;
  peers =
    lib.optional (config.services.emily.memory.enable or false) "emily-memory.service"
    ++ lib.optional (config.services.emily.inference.enable or false) "emily-inference.service";
  env = lib.mapAttrs (_: toString) (
    {
      EMILY_COGNITION__HTTP_ADDR = cfg.listenAddress;
      EMILY_COGNITION__HTTP_PORT = cfg.port;
      EMILY_COGNITION__CAPACITY = cfg.workspaceCapacity;
      EMILY_COGNITION__EMBEDDINGS = lib.boolToString cfg.embeddings;
      EMILY_BUS__MODE = "client";
      EMILY_BUS__NODE = cfg.node;
      EMILY_BUS__CONNECT = builtins.toJSON [ cfg.router ];
      EMILY_BUS__LISTEN = "[]";
      HF_HUB_OFFLINE = "1";
    }
    // lib.mapAttrs' (k: lib.nameValuePair "EMILY_COGNITION__${lib.toUpper k}") cfg.settings
  );
in
{
  options.services.emily.cognition = busOptions "cognition" // {
    enable = lib.mkEnableOption "the Emily cognition service (reflex, workspace, active inference)";

    package = lib.mkPackageOption pkgs "emily" { };

    user = lib.mkOption {
      type = lib.types.str;
      default = "emily-cognition";
      description = "Unix user of the unit (owns the state directory with the cached reflex).";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8462;
      description = "Port of /v1/observe, /metrics and /healthz.";
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address the HTTP API listens on.";
    };

    workspaceCapacity = lib.mkOption {
      type = lib.types.ints.positive;
      default = 7;
      description = "Items the global workspace holds.";
    };

    embeddings = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Load MiniLM for the reflex's second stage and for recall vectors. Off: the
        n-gram reflex alone, and memory embeds the query itself.
      '';
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
        recall_timeout_s = 0.5;
        deliberate_timeout_s = 60;
      };
      description = "Further `[cognition]` settings (see emily/cognition/config.py), passed as EMILY_COGNITION__<NAME>.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.${cfg.user} = {
      isSystemUser = true;
      group = cfg.user;
    };
    users.groups.${cfg.user} = { };

    systemd.services.emily-cognition = {
      description = "Emily cognition service (reflex, workspace, active inference)";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
      ]
      ++ lib.optional config.services.zenohd.enable "zenohd.service"
      ++ peers;
      wants = [
        "network-online.target"
      ]
      ++ lib.optional config.services.zenohd.enable "zenohd.service"
      ++ peers;
      environment = env;
      serviceConfig = hardening // {
        ExecStart = "${lib.getExe cfg.package} serve cognition";
        User = cfg.user;
        Group = cfg.user;
        Restart = "on-failure";
        RestartSec = 5;
        # the first start trains the reflex (seconds to a minute on two cores)
        TimeoutStartSec = 300;
        StateDirectory = "emily-cognition";
        StateDirectoryMode = "0700";
        UMask = "0077";
        PrivateDevices = true;
        DevicePolicy = "closed";
        ProtectClock = true;
        ProtectProc = "invisible";
      };
    };
  };
}
