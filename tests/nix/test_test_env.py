"""services/test-env.nix gives the Nix tests what the `embedded` extra gives pip's.

Evaluated with a stand-in ``pkgs`` (no nixpkgs here): only the shape is checked, that
the tools carry Postgres *with pgvector* (for EmbeddedPostgres's PATH backend), that
``env`` names the model under the variable ``embedded_model`` reads, and that the
flake's nixpkgs and sops-nix inputs reach the variables tests/nix/nixeval.py reads.
"""

from __future__ import annotations

from emily.inference.store import MODEL_ENV
from tests.nix.nixeval import LIB_ENV, SOPS_ENV, nix_eval

STUB = """
{ inputs ? { } }:
let
  tool = name: { inherit name; };
  pkgs = {
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
    "openssl" "espeak-ng"
  ]);
  env = import ./services/test-env.nix ({ inherit pkgs; } // inputs);
in { inherit (env) env tools; }
"""


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
    # stand-ins for the inputs: attrsets whose outPath is their source, as a flake's are
    inputs = """{
      nixpkgs = { outPath = "/nix/store/nixpkgs-source"; lib = { }; };
      sops-nix = { outPath = "/nix/store/sops-nix-source"; };
    }"""
    env = nix_eval(f"({STUB}) {{ inputs = {inputs}; }}")["env"]
    assert env[LIB_ENV] == "/nix/store/nixpkgs-source/lib"
    assert env[SOPS_ENV] == "/nix/store/sops-nix-source"
