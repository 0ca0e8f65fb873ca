# The token wiring of modules/services/lib/http-api.nix, which needs no nixpkgs lib (its
# options do: tests/nix/test_http_api.py evaluates them against one).
let
  http = import ../../modules/services/lib/http-api.nix {
    lib = throw "the token wiring must not need a nixpkgs lib";
  };
  withSops = {
    sops = { };
  };
  config.sops.secrets."memory/api-key".path = "/run/secrets/memory/api-key";
  tokenFile =
    apiKeyFile: apiKeySecret: options:
    http.tokenFile {
      cfg = { inherit apiKeyFile apiKeySecret; };
      inherit config options;
    };
  failed =
    apiKeySecret: options:
    map (a: a.message) (
      builtins.filter (a: !a.assertion) (
        http.assertions {
          service = "memory";
          cfg = { inherit apiKeySecret; };
          inherit options;
        }
      )
    );
in
[
  {
    name = "no file and no secret: no token";
    expr = tokenFile null null withSops;
    expected = null;
  }
  {
    name = "a file without a secret is the token file";
    expr = tokenFile "/etc/emily/memory.token" null { };
    expected = "/etc/emily/memory.token";
  }
  {
    name = "with sops-nix the secret's path wins over the file";
    expr = tokenFile "/etc/emily/memory.token" "memory/api-key" withSops;
    expected = "/run/secrets/memory/api-key";
  }
  {
    name = "without sops-nix a secret falls back to the file (and fails the assertion)";
    expr = tokenFile "/etc/emily/memory.token" "memory/api-key" { };
    expected = "/etc/emily/memory.token";
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
]
