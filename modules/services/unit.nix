# The one helper behind the three Emily service units (memory, inference, cognition):
# the options they share (package, user, bus placement and TLS files, resources,
# free-form settings) and the unit itself (user, environment rendered by
# modules/lib/settings.nix, sandbox, state under emily.stateDir, resource limits).
# Each service module adds only what differs: its own options, its settings, its
# ordering and whether it opens the GPU.
{
  config,
  lib,
  pkgs,
}:

let
  settingsLib = import ../lib/settings.nix;
  resources = import ../lib/resources.nix;
  zenohd = config.emily.zenohd;
  stateDir = toString config.emily.stateDir;
  nvidiaNodes = [
    "/dev/nvidiactl rw"
    "/dev/nvidia0 rw"
    "/dev/nvidia-uvm rw"
    "/dev/nvidia-uvm-tools rw"
  ];
  size = lib.types.strMatching "[0-9]+[KMGT]?";
  scalar = lib.types.oneOf [
    lib.types.str
    lib.types.int
    lib.types.bool
    lib.types.float
  ];
  file = lib.types.nullOr lib.types.str;
in
{
  inherit nvidiaNodes;

  # Options of services.emily.<service>; `defaults` = { user; memoryHigh; memoryMax;
  # cpuWeight; }, `example` = an example of `settings`.
  options =
    {
      service,
      description,
      defaults,
      example ? { },
    }:
    {
      enable = lib.mkEnableOption description;

      package = lib.mkPackageOption pkgs "emily" { };

      user = lib.mkOption {
        type = lib.types.str;
        default = defaults.user;
        description = "Unix user of the unit; owns its state directory and certificate.";
      };

      node = lib.mkOption {
        type = lib.types.strMatching "[A-Za-z0-9_.-]+";
        default = config.emily.node;
        defaultText = lib.literalExpression "config.emily.node";
        description = "Key chunk naming this host on the bus (`emily/<node>/${service}/...`).";
      };

      router = lib.mkOption {
        type = lib.types.str;
        default = "${if zenohd.tls.enable then "tls" else "tcp"}/127.0.0.1:${toString zenohd.port}";
        defaultText = lib.literalMD "`tls/127.0.0.1:<port>` (`tcp/` without zenohd's TLS)";
        description = "Zenoh endpoint of the host's zenohd router; the service is its client.";
      };

      tls = {
        rootCa = lib.mkOption {
          type = file;
          default = if zenohd.tls.enable then zenohd.tls.rootCa else null;
          defaultText = lib.literalMD "`emily.zenohd.tls.rootCa` when `emily.zenohd.tls.enable`";
          description = "PEM file of the bus CA; null: plain TCP to the router.";
        };
        certificate = lib.mkOption {
          type = file;
          default = null;
          description = "PEM certificate of this service (CN=${service}), readable by its user; sops on the host (modules/secrets.nix).";
        };
        privateKey = lib.mkOption {
          type = file;
          default = null;
          description = "PEM private key of that certificate.";
        };
      };

      resources = {
        memoryHigh = lib.mkOption {
          type = size;
          default = defaults.memoryHigh;
          description = ''
            systemd MemoryHigh: above it the kernel reclaims and throttles the unit (the
            burstable share). The sum over the services is what the host sets aside for them.
          '';
        };
        memoryMax = lib.mkOption {
          type = size;
          default = defaults.memoryMax;
          description = "systemd MemoryMax: the hard limit; the OOM killer stops the unit above it.";
        };
        cpuWeight = lib.mkOption {
          type = lib.types.ints.between 1 10000;
          default = defaults.cpuWeight;
          description = "systemd CPUWeight (100 is every unit's default): the share of CPU under contention.";
        };
      };

      settings = lib.mkOption {
        type = lib.types.attrsOf (lib.types.either scalar (lib.types.listOf scalar));
        default = { };
        inherit example;
        description = ''
          Further `[${service}]` settings of emily.config, passed as
          EMILY_${lib.toUpper service}__<NAME> (booleans as true/false, lists as JSON).
        '';
      };
    };

  # The NixOS config of one service: `settings` are the module's typed settings (the
  # user's `cfg.settings` win); `gpu` opens the NVIDIA device nodes and nothing else.
  config =
    {
      service,
      cfg,
      description,
      settings,
      extraEnvironment ? { },
      after ? [ ],
      wants ? [ ],
      requires ? [ ],
      gpu ? false,
      serviceConfig ? { },
    }:
    let
      unit = "emily-${service}";
      tls =
        if cfg.tls.rootCa == null then
          null
        else
          {
            inherit (cfg.tls) rootCa certificate privateKey;
          };
      router = lib.optional config.services.zenohd.enable "zenohd.service";
      tlsComplete = cfg.tls.certificate != null && cfg.tls.privateKey != null;
      high = resources.bytes cfg.resources.memoryHigh;
      max = resources.bytes cfg.resources.memoryMax;
    in
    {
      assertions = [
        {
          assertion = cfg.tls.rootCa == null || tlsComplete;
          message = "services.emily.${service}.tls: rootCa is set, so certificate and privateKey are needed (mutual TLS).";
        }
        {
          assertion = high <= max;
          message = "services.emily.${service}.resources: memoryHigh (${cfg.resources.memoryHigh}) must not exceed memoryMax (${cfg.resources.memoryMax}).";
        }
        {
          assertion = lib.hasPrefix "tls/" cfg.router || tls == null;
          message = "services.emily.${service}: TLS files are set but the router endpoint ${cfg.router} is not tls/.";
        }
      ];

      users.users.${cfg.user} = {
        isSystemUser = true;
        group = cfg.user;
        extraGroups = lib.optional gpu "video";
      };
      users.groups.${cfg.user} = { };

      # the `emily` command for the administrator (CLI, `emily model pull`)
      environment.systemPackages = [ cfg.package ];

      systemd.services.${unit} = {
        inherit description;
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" ] ++ router ++ after;
        wants = [ "network-online.target" ] ++ router ++ wants;
        inherit requires;
        environment =
          settingsLib.serviceEnv {
            inherit service tls;
            inherit (cfg) node router;
            settings = settings // cfg.settings;
          }
          # two glibc malloc arenas, not up to 8 per core that each keep what their thread freed
          // { MALLOC_ARENA_MAX = "2"; }
          // extraEnvironment;
        unitConfig.RequiresMountsFor = [ stateDir ];
        serviceConfig = {
          ExecStart = "${lib.getExe cfg.package} serve ${service}";
          User = cfg.user;
          Group = cfg.user;
          Restart = "on-failure";
          RestartSec = 5;
          # loading models (MiniLM, a GGUF), training the reflex or warming the tiers
          TimeoutStartSec = 300;
          # systemd's StateDirectory is relative to /var/lib (emily.stateDir asserts that)
          StateDirectory = "${lib.removePrefix "/var/lib/" stateDir}/${service}";
          StateDirectoryMode = "0700";
          UMask = "0077";

          MemoryAccounting = true;
          MemoryHigh = cfg.resources.memoryHigh;
          MemoryMax = cfg.resources.memoryMax;
          CPUWeight = cfg.resources.cpuWeight;

          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectHostname = true;
          ProtectClock = true;
          ProtectProc = "invisible";
          RestrictSUIDSGID = true;
          RestrictRealtime = true;
          RestrictNamespaces = true;
          LockPersonality = true;
          RemoveIPC = true;
          CapabilityBoundingSet = "";
          AmbientCapabilities = "";
          RestrictAddressFamilies = [
            "AF_UNIX"
            "AF_INET"
            "AF_INET6"
          ];
          SystemCallArchitectures = "native";
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
          ];
          # without the GPU no device at all; with it the NVIDIA nodes and nothing else
          # (ProtectClock's implicit rtc entry aside)
          PrivateDevices = !gpu;
          DevicePolicy = "closed";
          DeviceAllow = lib.optionals gpu nvidiaNodes;
        }
        // serviceConfig;
      };
    };
}
