# The token wiring of modules/services/lib/http-api.nix (`token`). Its file, settings and
# assertions need no nixpkgs lib; its secret needs only lib's optionalAttrs and mkIf,
# stood in by their definitions in nixpkgs' lib/attrsets.nix and lib/modules.nix. The
# options need a whole lib: tests/nix/test_http_api.py evaluates them, and every module
# using `token`, against one.
let
  http = import ../../modules/services/lib/http-api.nix {
    lib = throw "the token's file, settings and assertions must not need a nixpkgs lib";
  };
  httpWithLib = import ../../modules/services/lib/http-api.nix {
    lib = {
      optionalAttrs = cond: set: if cond then set else { };
      mkIf = condition: content: {
        _type = "if";
        inherit condition content;
      };
    };
  };
  withSops = {
    sops = { };
  };
  config.sops.secrets."memory/api-key".path = "/run/secrets/memory/api-key";
  cfgOf = apiKeyFile: apiKeySecret: {
    inherit apiKeyFile apiKeySecret;
    enable = true;
    user = "emily";
  };
  token =
    apiKeyFile: apiKeySecret: options:
    http.token {
      service = "memory";
      cfg = cfgOf apiKeyFile apiKeySecret;
      inherit config options;
    };
  failed =
    apiKeySecret: options:
    map (a: a.message) (
      builtins.filter (a: !a.assertion) (token null apiKeySecret options).assertions
    );
  secrets =
    cfg: options:
    (httpWithLib.token {
      service = "memory";
      inherit cfg config options;
    }).secrets;
in
[
  {
    name = "no file and no secret: no token, no setting";
    expr = {
      inherit (token null null withSops) file settings;
    };
    expected = {
      file = null;
      settings = { };
    };
  }
  {
    name = "a file without a secret is the token file and the unit's api_key_file";
    expr = {
      inherit (token "/etc/emily/memory.token" null { }) file settings;
    };
    expected = {
      file = "/etc/emily/memory.token";
      settings.api_key_file = "/etc/emily/memory.token";
    };
  }
  {
    name = "with sops-nix the secret's path wins over the file";
    expr = (token "/etc/emily/memory.token" "memory/api-key" withSops).settings;
    expected.api_key_file = "/run/secrets/memory/api-key";
  }
  {
    name = "without sops-nix a secret falls back to the file (and fails the assertion)";
    expr = (token "/etc/emily/memory.token" "memory/api-key" { }).settings;
    expected.api_key_file = "/etc/emily/memory.token";
  }
  {
    name = "without sops-nix a secret alone gives no setting";
    expr = (token null "memory/api-key" { }).settings;
    expected = { };
  }
  {
    name = "a secret without sops-nix is an assertion failure naming the service";
    expr = failed "memory/api-key" { };
    expected = [
      "services.emily.memory.apiKeySecret needs sops-nix: add sops-nix.nixosModules.sops."
    ];
  }
  {
    name = "a secret with sops-nix, or no secret, passes";
    expr = failed "memory/api-key" withSops ++ failed null { };
    expected = [ ];
  }
  {
    name = "with sops-nix the secret is the unit user's and restarts the unit, if enabled";
    expr = secrets (cfgOf null "memory/api-key") withSops;
    expected = {
      _type = "if";
      condition = true;
      content.sops.secrets."memory/api-key" = {
        owner = "emily";
        restartUnits = [ "emily-memory.service" ];
      };
    };
  }
  {
    name = "a disabled service or no secret declares none";
    expr = map (cfg: (secrets cfg withSops).condition) [
      (cfgOf null "memory/api-key" // { enable = false; })
      (cfgOf "/etc/emily/memory.token" null)
    ];
    expected = [
      false
      false
    ];
  }
  {
    name = "without sops-nix the fragment sets nothing, so sops is never an undeclared option";
    expr = secrets (cfgOf null "memory/api-key") { };
    expected = { };
  }
]
