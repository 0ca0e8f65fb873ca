"""services/test-env.nix gives the Nix tests what the `embedded` extra gives pip's.

Evaluated with a stand-in ``pkgs`` (no nixpkgs here): only the shape is checked, that
the tools carry Postgres *with pgvector* (for EmbeddedPostgres's PATH backend), that
``env`` names the model under the variable ``embedded_model`` reads, and that the
flake's nixpkgs and sops-nix inputs reach the variables tests/nix/nixeval.py reads, in
the `pytest` check and in ``nix develop`` alike.
"""

from __future__ import annotations

from pathlib import Path

from emily.inference.store import MODEL_ENV
from tests.nix.nixeval import LIB_ENV, SOPS_ENV, nix_eval

# a stand-in pkgs: the attributes services/test-env.nix and services/devshell.nix use
PKGS = """
let
  tool = name: { inherit name; };
in
  {
    mkShell = args: args;
    lib.optionalAttrs = cond: set: if cond then set else { };
    postgresql = tool "postgresql" // {
      withPackages = f: {
        name = "postgresql-and-plugins";
        plugins = f { pgvector = "pgvector"; };
      };
    };
    emily-gemma3-270m = "gemma";
    emily-whisper-tiny-en = "/nix/store/whisper";
    tesseract.override = args: { name = "tesseract"; languages = args.enableLanguages; };
    python312.withPackages = f: "python";
    linkFarm = name: entries: "/nix/store/farm-${(builtins.head entries).path}";
  } // builtins.listToAttrs (map (n: { name = n; value = tool n; }) [
    "gnumake" "nix" "ruff" "sops" "age" "prometheus" "prometheus-alertmanager"
    "prometheus-blackbox-exporter" "restic" "kea" "unbound" "iproute2" "util-linux" "shellcheck"
    "openssl" "espeak-ng" "uv" "mypy" "nixfmt"
  ])
"""

STUB = f"""
{{ inputs ? {{ }} }}:
let
  pkgs = {PKGS};
  env = import ./services/test-env.nix ({{ inherit pkgs; }} // inputs);
in {{ inherit (env) env tools; }}
"""

# stand-ins for the inputs: attrsets whose outPath is their source, as a flake's are
INPUTS = """{
  nixpkgs = { outPath = "/nix/store/nixpkgs-source"; lib = { }; };
  sops-nix = { outPath = "/nix/store/sops-nix-source"; };
}"""


def test_tools_carry_postgres_with_pgvector_and_env_names_the_model() -> None:
    got = nix_eval(f"({STUB}) {{ }}")
    postgres = [t for t in got["tools"] if t["name"].startswith("postgresql")]
    assert postgres == [{"name": "postgresql-and-plugins", "plugins": ["pgvector"]}]
    # the file keeps the model's own name: the service reports the stem as the model
    assert got["env"] == {
        MODEL_ENV: "/nix/store/farm-gemma/gemma-3-270m-q4_k_m.gguf",
        "EMILY_PERCEPTION__MODEL_DIR": "/nix/store/whisper",
        "EMILY_PERCEPTION__MODEL_NAME": "whisper-tiny.en",
    }
    assert {"name": "tesseract", "languages": ["eng"]} in got["tools"]
    assert {"name": "espeak-ng"} in got["tools"]


def test_the_flake_inputs_are_the_sources_the_module_tests_evaluate_against() -> None:
    env = nix_eval(f"({STUB}) {{ inputs = {INPUTS}; }}")["env"]
    assert env[LIB_ENV] == "/nix/store/nixpkgs-source/lib"
    assert env[SOPS_ENV] == "/nix/store/sops-nix-source"


def test_the_dev_shell_exports_what_the_check_sets() -> None:
    # services/devshell.nix given the inputs, and called without them
    got = nix_eval(
        f"""let
          inputs = {INPUTS};
          shell = import ./services/devshell.nix ({{ pkgs = {PKGS}; }} // inputs);
          bare = import ./services/devshell.nix {{ pkgs = {PKGS}; }};
        in {{
          shell = shell.env;
          bare = bare.env;
          check = (({STUB}) {{ inherit inputs; }}).env;
        }}"""
    )
    assert got["shell"] == got["check"]
    assert got["shell"][LIB_ENV] == "/nix/store/nixpkgs-source/lib"
    assert got["shell"][SOPS_ENV] == "/nix/store/sops-nix-source"
    assert LIB_ENV not in got["bare"] and SOPS_ENV not in got["bare"]


def test_the_flake_passes_its_inputs_to_the_dev_shell(tmp_path: Path) -> None:
    # flake.nix's outputs over stand-in inputs: nixpkgs is a directory whose default.nix
    # returns the stand-in pkgs, so the devShell's EMILY_NIXPKGS_LIB is that directory's lib
    (tmp_path / "default.nix").write_text(f"_args: {PKGS}")
    got = nix_eval(
        f"""let
          flake = import ./flake.nix;
          nixpkgs = {{ outPath = "{tmp_path}"; lib.nixosSystem = args: args; }};
          sops-nix = {{ outPath = "/nix/store/sops-nix-source"; nixosModules.sops = "sops"; }};
          disko = {{ nixosModules.disko = "disko"; }};
          outputs = flake.outputs {{ self = outputs; inherit nixpkgs sops-nix disko; }};
        in outputs.devShells.x86_64-linux.default.env"""
    )
    assert got[LIB_ENV] == f"{tmp_path}/lib"
    assert got[SOPS_ENV] == "/nix/store/sops-nix-source"
