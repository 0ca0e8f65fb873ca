# `nix develop`: Python 3.12 with the project's dependencies and test tools, plus the
# programs `make test` validates host files with.
{ pkgs }:

let
  pyproject = import ./lib/pyproject.nix;
  info = pyproject.projectInfo ../python/pyproject.toml;
  python = pkgs.python312.withPackages (
    ps:
    pyproject.toPythonPackages ps info.dependencies
    ++ [
      ps.pytest
      ps.pytest-asyncio
      ps.pytest-xdist
      ps.pytest-cov
      ps.hypothesis
      ps.mypy
      ps.setuptools
    ]
  );
in
pkgs.mkShell {
  packages = [
    python
    pkgs.uv
    pkgs.ruff
    pkgs.mypy
    pkgs.sops
    pkgs.age
    pkgs.prometheus
    pkgs.prometheus-alertmanager
    pkgs.nixfmt
    pkgs.gnumake
  ];

  # `make test` sees this and uses the shell's Python and tools, installing nothing.
  EMILY_NIX_SHELL = "1";
  shellHook = ''
    export PYTHONPATH="$PWD/python/src''${PYTHONPATH:+:$PYTHONPATH}"
  '';
}
