# llama-cpp-python for the inference service, from nixpkgs. With nixpkgs' `cudaSupport`
# on (modules/gpu.nix sets it on the host, with cudaPackages pinned to a 12.x set and
# cudaCapabilities = [ "6.1" ] for the Tesla P4) it is built with GGML_CUDA for exactly
# those capabilities and finds the driver's libcuda through the driver runpath (the
# package adds autoAddDriverRunpath itself). Everywhere else it is the CPU-only build.
#
# The package passes its CMake options as `cmakeFlags`, which scikit-build-core's setup
# hook appends to SKBUILD_CMAKE_ARGS; the architectures go there the same way.
#
# The `server` extra (llama_cpp.server, which bench/inference_throughput runs) is declared
# here when nixpkgs' package does not declare it, from the requirements of the package's
# own metadata, so that pyproject's `llama-cpp-python[server]` resolves under Nix too.
{
  lib,
  config,
  llama-cpp-python,
  cudaPackages,
  fastapi,
  pydantic-settings,
  pyyaml,
  sse-starlette,
  starlette-context,
  uvicorn,
}:

let
  cudaSupport = config.cudaSupport or false;
  cuda = import ../modules/lib/cuda.nix;
  architectures = cuda.cmakeArchitectures (config.cudaCapabilities or [ "6.1" ]);
  withServer =
    pkg:
    pkg.overridePythonAttrs (old: {
      optional-dependencies = {
        server = [
          fastapi
          pydantic-settings
          pyyaml
          sse-starlette
          starlette-context
          uvicorn
        ];
      }
      // (old.optional-dependencies or { });
    });
in
withServer (
  if cudaSupport then
    (llama-cpp-python.override {
      cudaSupport = true;
      inherit cudaPackages;
    }).overridePythonAttrs
      (old: {
        cmakeFlags = (old.cmakeFlags or [ ]) ++ [
          (lib.cmakeFeature "CMAKE_CUDA_ARCHITECTURES" architectures)
        ];
      })
  else
    llama-cpp-python.override { cudaSupport = false; }
)
