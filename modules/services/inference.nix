# emily-inference: llama.cpp over Zenoh and an OpenAI-compatible HTTP API
# (`emily serve inference`). A client of the host's zenohd; HTTP, /healthz and /metrics
# on localhost:8461. With `gpuLayers` != 0 the unit may open the NVIDIA device nodes and
# nothing else; on the CPU it gets no devices at all. The optional bearer token is a
# file, on the host a sops secret (`apiKeySecret`). The unit itself comes from ./unit.nix.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.inference;
  unit = import ./unit.nix { inherit config lib pkgs; };
  gpu = cfg.gpuLayers != 0;
  tokenFile =
    if cfg.apiKeySecret != null && options ? sops then
      config.sops.secrets.${cfg.apiKeySecret}.path
    else
      cfg.apiKeyFile;
in
{
  options.services.emily.inference = unit.options {
    service = "inference";
    description = "the Emily inference service (llama.cpp, Zenoh and OpenAI HTTP)";
    defaults = {
      user = "emily-inference";
      # llama.cpp's host-side buffers and the mmapped GGUF (a 4B Q4_K_M file is ~2.5 GB)
      memoryHigh = "8G";
      memoryMax = "12G";
      cpuWeight = 100;
    };
    example = {
      queue_size = 16;
      max_tokens = 512;
      temperature = 0.7;
    };
  }
  // {
    modelPath = lib.mkOption {
      type = lib.types.path;
      default = pkgs.emily-gemma3-270m;
      defaultText = lib.literalExpression "pkgs.emily-gemma3-270m";
      example = "/var/lib/emily/inference/models/gemma-3-4b-it-Q4_K_M.gguf";
      description = ''
        The GGUF model file. The default, Gemma 3 270M, only shows the plumbing; on the
        host use a 3-4B instruct model at Q4_K_M (docs/host.md names one with its
        sha256), fetched into the state directory with
        `emily model pull URL --sha256 HEX` run as this unit's user.
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
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable (
      lib.mkMerge [
        (unit.config {
          service = "inference";
          inherit cfg gpu;
          description = "Emily inference service (llama.cpp)";
          settings = {
            model_path = toString cfg.modelPath;
            n_gpu_layers = cfg.gpuLayers;
            n_ctx = cfg.contextLength;
            n_threads = cfg.threads;
            http_host = cfg.listenAddress;
            http_port = cfg.port;
          }
          // lib.optionalAttrs (tokenFile != null) { api_key_file = tokenFile; };
          after = lib.optional gpu "nvidia-persistenced.service";
        })
        {
          assertions = [
            {
              assertion = cfg.apiKeySecret == null || options ? sops;
              message = "services.emily.inference.apiKeySecret needs sops-nix: add sops-nix.nixosModules.sops.";
            }
          ];
        }
      ]
    ))
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
