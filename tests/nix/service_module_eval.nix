# One Emily service module (modules/services/<service>.nix) evaluated with
# lib.evalModules of a real nixpkgs lib (and, when given, the real sops-nix module), with
# stand-ins for the NixOS options the module sets; upstream types are copied where they
# matter (a unit's environment). Neither nixpkgs nor sops-nix is part of this repository:
# the tests in tests/nix pass their paths. Returns the unit's EMILY_<SERVICE>__*
# environment, the failed assertions' messages, the declared sops secrets and the user.
{
  nixpkgsLib,
  service,
  sopsNix ? null,
  cfg ? { },
}:
let
  repo = ../..;
  withSops = sopsNix != null;
  lib = import nixpkgsLib;
  fakeDrv =
    name:
    builtins.derivation {
      inherit name;
      system = "x86_64-linux";
      builder = "/bin/sh";
    }
    // {
      meta.mainProgram = name;
    };
  pkgs = {
    emily = fakeDrv "emily";
    emily-gemma3-270m = fakeDrv "gemma3-270m";
    emily-whisper-tiny-en = fakeDrv "whisper-tiny-en";
    postgresql_17 = fakeDrv "postgresql";
    tesseract = fakeDrv "tesseract" // {
      override = _: fakeDrv "tesseract";
    };
  };
  t = lib.types;
  freeform = t.attrsOf (t.submodule { freeformType = t.attrsOf t.anything; });
  standins =
    { lib, ... }:
    {
      options = {
        # upstream: nixos/modules/misc/assertions.nix (listOf unspecified)
        assertions = lib.mkOption {
          type = t.listOf t.unspecified;
          default = [ ];
        };
        warnings = lib.mkOption {
          type = t.listOf t.str;
          default = [ ];
        };
        users.users = lib.mkOption {
          type = freeform;
          default = { };
        };
        users.groups = lib.mkOption {
          type = freeform;
          default = { };
        };
        environment.systemPackages = lib.mkOption {
          type = t.listOf t.package;
          default = [ ];
        };
        # upstream systemd.services.<n>.environment: attrsOf (nullOr (oneOf [ str path package ]))
        systemd.services = lib.mkOption {
          type = t.attrsOf (
            t.submodule {
              freeformType = t.attrsOf t.anything;
              options.environment = lib.mkOption {
                type = t.attrsOf (
                  t.nullOr (
                    t.oneOf [
                      t.str
                      t.path
                      t.package
                    ]
                  )
                );
                default = { };
              };
            }
          );
          default = { };
        };
        services.zenohd.enable = lib.mkOption {
          type = t.bool;
          default = false;
        };
        services.openssh.enable = lib.mkOption {
          type = t.bool;
          default = false;
        };
        services.openssh.hostKeys = lib.mkOption {
          type = t.listOf t.attrs;
          default = [ ];
        };
        networking.hostName = lib.mkOption {
          type = t.str;
          default = "cloudlab";
        };
        emily = {
          node = lib.mkOption {
            type = t.strMatching "[A-Za-z0-9_.-]+";
            default = "cloudlab";
          };
          stateDir = lib.mkOption {
            type = t.strMatching "/var/lib/[A-Za-z0-9_.-]+";
            default = "/var/lib/emily";
          };
          database.enable = lib.mkOption {
            type = t.bool;
            default = true;
          };
          database.name = lib.mkOption {
            type = t.str;
            default = "emily";
          };
          zenohd.port = lib.mkOption {
            type = t.port;
            default = 7447;
          };
          zenohd.tls.enable = lib.mkOption {
            type = t.bool;
            default = false;
          };
          zenohd.tls.rootCa = lib.mkOption {
            type = t.nullOr t.str;
            default = null;
          };
        };
      };
    };
  # sops-nix sets options of the NixOS system the stand-ins do not model; a freeform
  # root keeps them (they are never read here)
  sopsStandins = {
    freeformType = t.lazyAttrsOf t.raw;
  };
  sopsModules = [
    (sopsNix + "/modules/sops")
    sopsStandins
    {
      sops.defaultSopsFile = "/nonexistent.yaml";
      sops.validateSopsFiles = false;
      sops.age.keyFile = "/var/lib/sops-nix/key.txt";
    }
  ];
  eval = lib.evalModules {
    specialArgs = {
      inherit pkgs;
      modulesPath = "/nonexistent";
    };
    modules = [
      standins
      (repo + "/modules/services/${service}.nix")
      { services.emily.${service} = { enable = true; } // cfg; }
    ]
    ++ lib.optionals withSops sopsModules;
  };
  c = eval.config;
  unit = c.systemd.services."emily-${service}";
  prefix = "EMILY_${lib.toUpper service}__";
in
{
  env = lib.filterAttrs (n: _: lib.hasPrefix prefix n) unit.environment;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  secrets =
    if withSops then
      lib.mapAttrs (_: s: { inherit (s) owner path restartUnits; }) c.sops.secrets
    else
      null;
  user = unit.serviceConfig.User;
}
