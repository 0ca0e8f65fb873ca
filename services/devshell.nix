# `nix develop`: Python 3.12 with the project's dependencies and test tools, plus the
# programs `make test` validates host files with. nixpkgs and sops-nix: the flake's
# inputs, passed on to ./test-env.nix as the `pytest` check passes them, so the Nix tests
# that evaluate the service modules run here too instead of skipping.
{
  pkgs,
  nixpkgs ? null,
  sops-nix ? null,
}:

let
  testEnv = import ./test-env.nix { inherit pkgs nixpkgs sops-nix; };
in
pkgs.mkShell {
  packages = [
    testEnv.python
    pkgs.uv
    pkgs.mypy
    pkgs.nixfmt
  ]
  ++ testEnv.tools;

  # `make test` sees this and uses the shell's Python and tools, installing nothing.
  EMILY_NIX_SHELL = "1";
  # what the tests need in place of the `embedded` extra (the models' paths), and the
  # nixpkgs lib and sops-nix sources of the module tests (EMILY_NIXPKGS_LIB, EMILY_SOPS_NIX)
  inherit (testEnv) env;
  shellHook = ''
    export PYTHONPATH="$PWD/python/src''${PYTHONPATH:+:$PYTHONPATH}"
  '';
}
