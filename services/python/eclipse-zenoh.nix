# Zenoh's Python binding is Rust; its crates cannot be vendored offline, so this
# packages the published manylinux wheel and lets autoPatchelfHook fix its ELF.
{
  lib,
  buildPythonPackage,
  fetchPypi,
  autoPatchelfHook,
  stdenv,
}:

buildPythonPackage rec {
  pname = "eclipse-zenoh";
  version = "1.10.2";
  format = "wheel";

  src = fetchPypi {
    pname = "eclipse_zenoh";
    inherit version format;
    dist = "cp39";
    python = "cp39";
    abi = "abi3";
    platform = "manylinux_2_17_x86_64.manylinux2014_x86_64";
    # sha256 of the wheel file as downloaded by `pip download --no-deps eclipse-zenoh==1.10.2`
    hash = "sha256-zTySLJ8BhWj5x8h0fxqtgbZG9djpjMJL+kqhYPNc25Y=";
  };

  nativeBuildInputs = [ autoPatchelfHook ];
  buildInputs = [ stdenv.cc.cc.lib ];

  pythonImportsCheck = [ "zenoh" ];

  meta = {
    description = "Python API for Eclipse Zenoh";
    license = with lib.licenses; [
      epl20
      asl20
    ];
    platforms = [ "x86_64-linux" ];
  };
}
