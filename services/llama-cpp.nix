# llama-cpp-python for the inference service, from nixpkgs. With nixpkgs' `cudaSupport`
# on (modules/gpu.nix sets it on the host, with cudaPackages pinned to a 12.x set and
# cudaCapabilities = [ "6.1" ] for the Tesla P4) it is built with GGML_CUDA for exactly
# those capabilities (CMAKE_CUDA_ARCHITECTURES=61) and finds the driver's libcuda through
# the driver runpath. Everywhere else it is the CPU-only build.
{
  lib,
  config,
  llama-cpp-python,
  cudaPackages,
  autoAddDriverRunpath,
}:

let
  cudaSupport = config.cudaSupport or false;
  capabilities = config.cudaCapabilities or [ "6.1" ];
  # "6.1" -> "61", the form CMake's CUDA_ARCHITECTURES takes
  architectures = lib.concatMapStringsSep ";" (lib.replaceStrings [ "." ] [ "" ]) capabilities;
  archFlag = "-DCMAKE_CUDA_ARCHITECTURES=${architectures}";
  # nixpkgs passes the CMake flags as SKBUILD_CMAKE_ARGS, at top level or under env
  withArch =
    old:
    if old ? SKBUILD_CMAKE_ARGS then
      { SKBUILD_CMAKE_ARGS = "${old.SKBUILD_CMAKE_ARGS};${archFlag}"; }
    else
      {
        env = (old.env or { }) // {
          SKBUILD_CMAKE_ARGS = lib.concatStringsSep ";" (
            lib.filter (s: s != "") [
              (old.env.SKBUILD_CMAKE_ARGS or "")
              archFlag
            ]
          );
        };
      };
in
if cudaSupport then
  (llama-cpp-python.override {
    cudaSupport = true;
    inherit cudaPackages;
  }).overridePythonAttrs
    (
      old:
      withArch old
      // {
        nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ autoAddDriverRunpath ];
      }
    )
else
  llama-cpp-python.override { cudaSupport = false; }
