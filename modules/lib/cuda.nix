# Which CUDA releases can build for which GPUs: a pure helper (builtins only), tested
# with `nix-instantiate --eval` (tests/nix/cuda_test.nix) and used by modules/gpu.nix's
# assertion. CUDA 13 dropped Maxwell, Pascal and Volta: it targets compute capability
# 7.5 (Turing) and newer, so the P4 (6.1) needs a CUDA 12 package set.
rec {
  # Oldest compute capability the CUDA major version `major` builds for: 13 dropped
  # Maxwell/Pascal/Volta, 12 dropped Kepler.
  minCapability =
    major:
    if builtins.compareVersions major "13" >= 0 then
      "7.5"
    else if builtins.compareVersions major "12" >= 0 then
      "5.0"
    else
      "3.5";

  # Capabilities (e.g. [ "6.1" ]) that CUDA version `cudaVersion` (e.g. "12.9") cannot target.
  unsupported =
    cudaVersion: capabilities:
    let
      major = builtins.head (builtins.splitVersion cudaVersion);
    in
    builtins.filter (c: builtins.compareVersions c (minCapability major) < 0) capabilities;

  supports = cudaVersion: capabilities: unsupported cudaVersion capabilities == [ ];

  # [ "6.1" "7.5" ] -> "61;75", the form CMake's CMAKE_CUDA_ARCHITECTURES takes
  cmakeArchitectures =
    capabilities:
    builtins.concatStringsSep ";" (map (builtins.replaceStrings [ "." ] [ "" ]) capabilities);
}
