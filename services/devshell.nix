# `nix develop`: Python 3.12 with the project's dependencies and test tools, plus the
# programs `make test` validates host files with.
{ pkgs }:

let
  testEnv = import ./test-env.nix { inherit pkgs; };
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
  # what the tests need in place of the `embedded` extra (the model's path)
  inherit (testEnv) env;
  shellHook = ''
    export PYTHONPATH="$PWD/python/src''${PYTHONPATH:+:$PYTHONPATH}"
  '';
}
