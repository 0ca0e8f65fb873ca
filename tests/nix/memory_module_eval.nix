# modules/services/memory.nix evaluated with lib.evalModules of a real nixpkgs lib (and,
# when given, the real sops-nix module), with stand-ins for the NixOS options the module
# sets; upstream types are copied where they matter (a unit's environment). Neither
# nixpkgs nor sops-nix is part of this repository: tests/nix/test_memory_module.py
# passes their paths. Returns the unit's EMILY_MEMORY__* environment, the failed
# assertions' messages and the declared sops secrets.
{
  nixpkgsLib,
  sopsNix ? null,
  memory ? { },
}:
let
  repo = ../..;
  withSops = sopsNix != null;
  lib = import nixpkgsLib;
  fakeDrv = name: builtins.derivation { inherit name; system = "x86_64-linux"; builder = "/bin/sh"; } // { meta.mainProgram = name; };
  pkgs = { emily = fakeDrv "emily"; postgresql_17 = fakeDrv "postgresql"; };
  t = lib.types;
  standins = { lib, ... }: {
    options = {
      # upstream: nixos/modules/misc/assertions.nix (listOf unspecified)
      assertions = lib.mkOption { type = t.listOf t.unspecified; default = [ ]; };
      warnings = lib.mkOption { type = t.listOf t.str; default = [ ]; };
      users.users = lib.mkOption { type = t.attrsOf (t.submodule { freeformType = t.attrsOf t.anything; }); default = { }; };
      users.groups = lib.mkOption { type = t.attrsOf (t.submodule { freeformType = t.attrsOf t.anything; }); default = { }; };
      environment.systemPackages = lib.mkOption { type = t.listOf t.package; default = [ ]; };
      # upstream systemd.services.<n>.environment: attrsOf (nullOr (oneOf [ str path package ]))
      systemd.services = lib.mkOption {
        type = t.attrsOf (t.submodule {
          freeformType = t.attrsOf t.anything;
          options.environment = lib.mkOption { type = t.attrsOf (t.nullOr (t.oneOf [ t.str t.path t.package ])); default = { }; };
        });
        default = { };
      };
      services.zenohd.enable = lib.mkOption { type = t.bool; default = false; };
      services.openssh.enable = lib.mkOption { type = t.bool; default = false; };
      services.openssh.hostKeys = lib.mkOption { type = t.listOf t.attrs; default = [ ]; };
      networking.hostName = lib.mkOption { type = t.str; default = "cloudlab"; };
      emily = {
        node = lib.mkOption { type = t.strMatching "[A-Za-z0-9_.-]+"; default = "cloudlab"; };
        stateDir = lib.mkOption { type = t.strMatching "/var/lib/[A-Za-z0-9_.-]+"; default = "/var/lib/emily"; };
        database.enable = lib.mkOption { type = t.bool; default = true; };
        database.name = lib.mkOption { type = t.str; default = "emily"; };
        zenohd.port = lib.mkOption { type = t.port; default = 7447; };
        zenohd.tls.enable = lib.mkOption { type = t.bool; default = false; };
        zenohd.tls.rootCa = lib.mkOption { type = t.nullOr t.str; default = null; };
      };
    };
  };
  # sops-nix sets options of the NixOS system the stand-ins do not model; a freeform
  # root keeps them (they are never read here)
  sopsStandins = { lib, ... }: {
    freeformType = t.lazyAttrsOf t.raw;
  };
  eval = lib.evalModules {
    specialArgs = { inherit pkgs; modulesPath = "/nonexistent"; };
    modules = [
      standins
      (repo + "/modules/services/memory.nix")
      { services.emily.memory = { enable = true; } // memory; }
    ] ++ lib.optionals withSops [ (sopsNix + "/modules/sops") sopsStandins { sops.defaultSopsFile = "/nonexistent.yaml"; sops.validateSopsFiles = false; sops.age.keyFile = "/var/lib/sops-nix/key.txt"; } ];
  };
  c = eval.config;
  unit = c.systemd.services.emily-memory;
in
{
  env = lib.filterAttrs (n: _: lib.hasPrefix "EMILY_MEMORY__" n) unit.environment;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  secrets = if withSops then lib.mapAttrs (_: s: { inherit (s) owner path restartUnits; }) c.sops.secrets else null;
  user = unit.serviceConfig.User;
}
