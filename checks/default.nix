# `nix flake check`: lints, the pure-helper tests and the Python test suite, each in
# the build sandbox. VM tests of the modules are added beside them as modules land.
# sops-nix: the flake input, for the VM tests that decrypt secrets/test.yaml; it and
# nixpkgs (the flake input) are also the sources pytest evaluates the modules against.
{
  pkgs,
  nixpkgs ? null,
  sops-nix ? null,
}:

let
  inherit (pkgs) lib;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../flake.nix
      ../flake.lock
      ../checks
      ../hosts
      ../modules
      ../secrets
      ../.sops.yaml
      ../services
      ../python
      ../tests
      ../bench
      # what `make pytest` and the manual's tests read
      ../Makefile
      ../README.md
      ../docs
      ../examples
    ];
  };

  testEnv = import ../services/test-env.nix { inherit pkgs nixpkgs sops-nix; };

  helperFailures = import ../tests/nix/run.nix;
in
{
  lint =
    pkgs.runCommand "emily-lint"
      {
        nativeBuildInputs = [
          pkgs.nixfmt
          pkgs.ruff
        ];
      }
      ''
        cd ${src}
        find . -name '*.nix' -print0 | xargs -0 nixfmt --check
        ruff check --config python/pyproject.toml python/src tests bench
        ruff format --check --config python/pyproject.toml python/src tests bench
        touch $out
      '';

  nix-helpers =
    if helperFailures == [ ] then
      pkgs.runCommand "emily-nix-helpers" { } "touch $out"
    else
      throw "Nix helper tests failed: ${builtins.toJSON helperFailures}";

  pytest =
    pkgs.runCommand "emily-pytest"
      {
        nativeBuildInputs = [ testEnv.python ] ++ testEnv.tools;
        inherit (testEnv) env;
      }
      ''
        cp -r ${src} source && chmod -R u+w source && cd source
        export HOME=$TMPDIR NIX_STATE_DIR=$TMPDIR/nix NIX_CONFIG="build-users-group ="
        export EMILY_STATE_DIR=$TMPDIR/state EMILY_NIX_SHELL=1 PYTHONPATH=$PWD/python/src
        # the same target `nix develop -c make test` runs, minus the lints (see `lint`)
        make pytest PYTEST_ARGS="-p no:cacheprovider"
        touch $out
      '';

  # VM tests of the host modules (issue 6), one per module
  host-zfs = import ./zfs.nix { inherit pkgs; };
  host-network = import ./network.nix { inherit pkgs sops-nix; };
  host-monitoring = import ./monitoring.nix { inherit pkgs sops-nix; };
  host-secrets = import ./secrets.nix { inherit pkgs sops-nix; };
  host-postgres = import ./postgres.nix { inherit pkgs; };
  host-backup = import ./backup.nix { inherit pkgs sops-nix; };
  memory = import ./memory.nix { inherit pkgs; };
  inference = import ./inference.nix { inherit pkgs; };
  cognition = import ./cognition.nix { inherit pkgs; };
  perception = import ./perception.nix { inherit pkgs; };
  # two hosts: cognition on one, memory and inference on the other, routers meshed
  bus-mesh = import ./bus-mesh.nix { inherit pkgs sops-nix; };
}
