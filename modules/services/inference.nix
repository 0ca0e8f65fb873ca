# emily-inference: llama.cpp over Zenoh and an OpenAI-compatible HTTP API
# (`emily serve inference`). A client of the host's zenohd; HTTP, /healthz and /metrics
# on localhost:8461. With `gpuLayers` != 0 the unit may open the NVIDIA device nodes and
# nothing else; on the CPU it gets no devices at all. The optional bearer token is a
# file, on the host a sops secret (`apiKeySecret`). The unit itself comes from ./unit.nix,
# the HTTP API's options from ./lib/http-api.nix.
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
  http = import ./lib/http-api.nix { inherit lib; };
  gpu = cfg.gpuLayers != 0;
  token = http.token {
    service = "inference";
    inherit cfg config options;
  };
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
  // http.options {
    service = "inference";
    port = 8461;
    portDescription = "Port of the OpenAI-compatible API, /healthz and /metrics.";
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
          // token.settings;
          after = lib.optional gpu "nvidia-persistenced.service";
        })
        {
          assertions = token.assertions;
        }
      ]
    ))
    token.secrets
  ];
}
