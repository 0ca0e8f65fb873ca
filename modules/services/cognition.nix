# emily-cognition: the cognitive cycle (spiking reflex, global workspace, active
# inference, allostasis) over Zenoh, plus /v1/observe, /metrics and /healthz on
# localhost:8462 (`emily serve cognition`). A client of the host's zenohd; it orders
# after the memory and inference units when they run here and works without them (the
# cycle degrades: the reflex still answers). Memory and inference may live on another
# node of the router mesh (`memoryNode`, `inferenceNode`). The reflex is trained on first
# start and cached in the state directory. The optional bearer token of /v1/* is a file,
# on the host a sops secret (`apiKeySecret`). The unit itself comes from ./unit.nix, the
# HTTP API's options from ./lib/http-api.nix.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.cognition;
  unit = import ./unit.nix { inherit config lib pkgs; };
  http = import ./lib/http-api.nix { inherit lib; };
  token = http.token {
    service = "cognition";
    inherit cfg config options;
  };
  local = name: config.services.emily.${name}.enable or false;
  peers =
    lib.optional (local "memory" && cfg.memoryNode == null) "emily-memory.service"
    ++ lib.optional (local "inference" && cfg.inferenceNode == null) "emily-inference.service";
  nodeOption =
    service:
    lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "[A-Za-z0-9_.-]+");
      default = null;
      example = "store";
      description = ''
        The node whose ${service} service cognition asks (`emily/<node>/${service}/*`),
        reached through the router mesh. Null: this service's own `node`.
      '';
    };
in
{
  options.services.emily.cognition = unit.options {
    service = "cognition";
    description = "the Emily cognition service (reflex, workspace, active inference)";
    defaults = {
      user = "emily-cognition";
      # the spiking reflex, the workspace and MiniLM for the reflex's second stage
      memoryHigh = "4G";
      memoryMax = "6G";
      # the reflex answers within milliseconds: first under contention
      cpuWeight = 400;
    };
    example = {
      recall_timeout_s = 0.5;
      deliberate_timeout_s = 60;
      stochastic = false;
    };
  }
  // http.options {
    service = "cognition";
    port = 8462;
    portDescription = "Port of /v1/observe, /metrics and /healthz.";
  }
  // {
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

    memoryNode = nodeOption "memory";
    inferenceNode = nodeOption "inference";
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable (
      lib.mkMerge [
        (unit.config {
          service = "cognition";
          inherit cfg;
          description = "Emily cognition service (reflex, workspace, active inference)";
          settings = {
            http_addr = cfg.listenAddress;
            http_port = cfg.port;
            capacity = cfg.workspaceCapacity;
            inherit (cfg) embeddings;
            memory_node = if cfg.memoryNode == null then "" else cfg.memoryNode;
            inference_node = if cfg.inferenceNode == null then "" else cfg.inferenceNode;
          }
          // token.settings;
          extraEnvironment.HF_HUB_OFFLINE = "1";
          after = peers;
          wants = peers;
        })
        {
          assertions = token.assertions;
        }
      ]
    ))
    token.secrets
  ];
}
