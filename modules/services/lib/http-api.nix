# The HTTP options the Emily services share, one copy: the API's port and listen
# address and the bearer token /v1/* may require (memory, inference, cognition), the
# token as a file or a sops secret, with what follows from it (`token`: the file the
# unit reads, the assertion that a secret needs sops-nix, and the secret itself); and the
# port and address of a /metrics server of its own (memory, perception).
# Pure: it takes lib and each call's arguments. Tested in tests/nix/http_api_test.nix
# and, against a nixpkgs lib, tests/nix/test_http_api.py.
{ lib }:

{
  # Options of services.emily.<service>: `port` is the API's default port.
  options =
    {
      service,
      port,
      portDescription,
    }:
    {
      port = lib.mkOption {
        type = lib.types.port;
        default = port;
        description = portDescription;
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
        example = "${service}/api-key";
        description = ''
          Name of a sops secret holding the bearer token (needs sops-nix). The module
          declares it readable by the unit's user and restarts the unit when it changes.
        '';
      };
    };

  # metricsPort and metricsAddress of a service's own /metrics server
  metrics =
    { port }:
    {
      metricsPort = lib.mkOption {
        type = lib.types.port;
        default = port;
        description = "Port of /metrics (Prometheus).";
      };

      metricsAddress = lib.mkOption {
        type = lib.types.str;
        default = "127.0.0.1";
        description = "Address /metrics listens on.";
      };
    };

  # The bearer token's wiring of one service, from its options: `file`, the token file
  # the unit reads, or null (the sops secret's path when `apiKeySecret` is set and
  # sops-nix is imported, i.e. the module's `options` has `sops`, else `apiKeyFile`);
  # `settings`, the unit's `api_key_file` setting when there is a file; `assertions`, that
  # a secret needs sops-nix; `secrets`, a config fragment declaring the secret readable by
  # the unit's user and restarting the unit when it changes. `sops` is set only where
  # sops-nix declares it, so a host without sops-nix still evaluates. `file`, `settings`
  # and `assertions` need no lib.
  token =
    {
      service,
      cfg,
      config,
      options,
    }:
    let
      withSops = options ? sops;
      file =
        if cfg.apiKeySecret != null && withSops then
          config.sops.secrets.${cfg.apiKeySecret}.path
        else
          cfg.apiKeyFile;
    in
    {
      inherit file;

      settings = if file == null then { } else { api_key_file = file; };

      assertions = [
        {
          assertion = cfg.apiKeySecret == null || withSops;
          message = "services.emily.${service}.apiKeySecret needs sops-nix: add sops-nix.nixosModules.sops.";
        }
      ];

      secrets = lib.optionalAttrs withSops (
        lib.mkIf (cfg.enable && cfg.apiKeySecret != null) {
          sops.secrets.${cfg.apiKeySecret} = {
            owner = cfg.user;
            restartUnits = [ "emily-${service}.service" ];
          };
        }
      );
    };
}
