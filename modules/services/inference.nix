# emily-inference: llama.cpp over Zenoh and an OpenAI-compatible HTTP API
# (`emily serve inference`). Zenoh in client mode to the host's zenohd; HTTP, /healthz
# and /metrics on localhost:8461. With `gpuLayers` != 0 the unit may open the NVIDIA
# device nodes and nothing else; on the CPU it gets no devices at all. The optional
# bearer token is a file, on the host a sops secret (`apiKeySecret`).
{
  config,
  lib,
  options,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.inference;
  busOptions = import ./bus-options.nix { inherit lib config; };
  hardening = import ./hardening.nix;
  gpu = cfg.gpuLayers != 0;
  tokenFile =
    if cfg.apiKeySecret != null && options ? sops then
      config.sops.secrets.${cfg.apiKeySecret}.path
    else
      cfg.apiKeyFile;
  env = lib.mapAttrs (_: toString) (
    {
      EMILY_INFERENCE__MODEL_PATH = cfg.modelPath;
      EMILY_INFERENCE__N_GPU_LAYERS = cfg.gpuLayers;
      EMILY_INFERENCE__N_CTX = cfg.contextLength;
      EMILY_INFERENCE__N_THREADS = cfg.threads;
      EMILY_INFERENCE__HTTP_HOST = cfg.listenAddress;
      EMILY_INFERENCE__HTTP_PORT = cfg.port;
      EMILY_BUS__MODE = "client";
      EMILY_BUS__NODE = cfg.node;
      EMILY_BUS__CONNECT = builtins.toJSON [ cfg.router ];
      EMILY_BUS__LISTEN = "[]";
    }
    // lib.optionalAttrs (tokenFile != null) { EMILY_INFERENCE__API_KEY_FILE = tokenFile; }
    // lib.mapAttrs' (k: lib.nameValuePair "EMILY_INFERENCE__${lib.toUpper k}") cfg.settings
  );
in
{
  options.services.emily.inference = busOptions "inference" // {
    enable = lib.mkEnableOption "the Emily inference service (llama.cpp, Zenoh and OpenAI HTTP)";

    package = lib.mkPackageOption pkgs "emily" { };

    user = lib.mkOption {
      type = lib.types.str;
      default = "emily-inference";
      description = "Unix user of the unit (owns the state directory and the token secret).";
    };

    modelPath = lib.mkOption {
      type = lib.types.path;
      default = pkgs.emily-gemma3-270m;
      defaultText = lib.literalExpression "pkgs.emily-gemma3-270m";
      example = "/var/lib/emily-inference/models/gemma-3-4b-it-Q4_K_M.gguf";
      description = ''
        The GGUF model file. The default, Gemma 3 270M, only shows the plumbing; on the
        host use a 3-4B instruct model at Q4_K_M, fetched into the state directory with
        `emily model pull URL --sha256 HEX` run as this unit's user with
        EMILY_STATE_DIR=/var/lib/emily-inference.
      '';
    };

    gpuLayers = lib.mkOption {
      type = lib.types.ints.between (-1) 1000;
      default = 0;
      example = -1;
      description = ''
        Layers offloaded to the GPU: -1 offloads all (the P4 host, with a CUDA build of
        llama-cpp-python from emily.gpu), 0 runs on the CPU. Non-zero also opens the
        NVIDIA device nodes to the unit.
      '';
    };

    contextLength = lib.mkOption {
      type = lib.types.ints.positive;
      default = 4096;
      description = "Context length in tokens.";
    };

    threads = lib.mkOption {
      type = lib.types.ints.unsigned;
      default = 0;
      description = "CPU threads; 0 uses every core the unit may run on.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 8461;
      description = "Port of the OpenAI-compatible API, /healthz and /metrics.";
    };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      description = "Address the HTTP API listens on.";
    };

    apiKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        A file holding the bearer token that /v1/* requires, outside the Nix store.
        Null: no token. Ignored when `apiKeySecret` is set.
      '';
    };

    apiKeySecret = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "inference/api-key";
      description = ''
        Name of a sops secret holding the bearer token (needs sops-nix). The module
        declares it readable by the unit's user and restarts the unit when it changes.
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
        queue_size = 16;
        max_tokens = 512;
        temperature = 0.7;
      };
      description = "Further `[inference]` settings (see emily/inference/config.py), passed as EMILY_INFERENCE__<NAME>.";
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      assertions = [
        {
          assertion = cfg.apiKeySecret == null || options ? sops;
          message = "services.emily.inference.apiKeySecret needs sops-nix: add sops-nix.nixosModules.sops.";
        }
      ];

      users.users.${cfg.user} = {
        isSystemUser = true;
        group = cfg.user;
        extraGroups = lib.optional gpu "video";
      };
      users.groups.${cfg.user} = { };

      systemd.services.emily-inference = {
        description = "Emily inference service (llama.cpp)";
        wantedBy = [ "multi-user.target" ];
        after = [
          "network-online.target"
        ]
        ++ lib.optional config.services.zenohd.enable "zenohd.service"
        ++ lib.optional gpu "nvidia-persistenced.service";
        wants = [
          "network-online.target"
        ]
        ++ lib.optional config.services.zenohd.enable "zenohd.service";
        environment = env;
        serviceConfig = hardening // {
          ExecStart = "${lib.getExe cfg.package} serve inference";
          User = cfg.user;
          Group = cfg.user;
          Restart = "on-failure";
          RestartSec = 5;
          # loading a 4B model from disk and into GPU memory takes a while
          TimeoutStartSec = 300;
          StateDirectory = "emily-inference";
          StateDirectoryMode = "0700";
          UMask = "0077";
          # the CPU path sees no devices; the GPU path sees the NVIDIA nodes and nothing else
          PrivateDevices = !gpu;
          DevicePolicy = "closed";
          DeviceAllow = lib.optionals gpu [
            "/dev/nvidiactl rw"
            "/dev/nvidia0 rw"
            "/dev/nvidia-uvm rw"
            "/dev/nvidia-uvm-tools rw"
          ];
          ProtectClock = true;
          ProtectProc = "invisible";
        };
      };
    })
    (lib.optionalAttrs (options ? sops) (
      lib.mkIf (cfg.enable && cfg.apiKeySecret != null) {
        sops.secrets.${cfg.apiKeySecret} = {
          owner = cfg.user;
          restartUnits = [ "emily-inference.service" ];
        };
      }
    ))
  ];
}
