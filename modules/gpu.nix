# GPU: the Tesla P4 (Pascal, compute capability 6.1). The 580 LTSB driver is the last
# branch that supports Pascal, and only with the proprietary kernel module (the open
# modules need Turing+). CUDA 13 dropped sm_6x, so the system's CUDA package set is
# pinned to a 12.x release by an overlay, and cudaCapabilities = [ "6.1" ] makes
# CUDA-enabled packages (llama-cpp-python's override in services/) build for sm_61.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.emily.gpu;
  pascal = lib.any (c: lib.versionOlder c "7.0") cfg.cudaCapabilities;
  cudaVersion = pkgs.cudaPackages.cudaMajorMinorVersion or pkgs.cudaPackages.cudaVersion;
in
{
  options.emily.gpu = {
    enable = lib.mkEnableOption "the NVIDIA P4 with the 580 legacy driver and CUDA 12";

    cudaPackageSet = lib.mkOption {
      type = lib.types.strMatching "cudaPackages_[0-9]+_[0-9]+";
      default = "cudaPackages_12_9";
      description = ''
        The nixpkgs CUDA package set that becomes `pkgs.cudaPackages` (an overlay). Must
        be 12.x while a Pascal capability is listed: CUDA 13 cannot target sm_61.
      '';
    };

    cudaCapabilities = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "6.1" ];
      description = "CUDA compute capabilities to build for (the P4 is 6.1).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !(pascal && lib.versionAtLeast cudaVersion "13");
        message = "emily.gpu: CUDA ${cudaVersion} (${cfg.cudaPackageSet}) cannot build for Pascal (capabilities ${toString cfg.cudaCapabilities}); choose a cudaPackages_12_* set.";
      }
    ];

    nixpkgs.config = {
      cudaSupport = true;
      inherit (cfg) cudaCapabilities;
      allowUnfreePredicate =
        p:
        let
          name = lib.getName p;
        in
        lib.hasPrefix "nvidia" name
        || lib.hasPrefix "cuda" name
        || lib.hasPrefix "libcu" name
        || lib.hasPrefix "libnv" name
        || lib.hasPrefix "libnpp" name
        || builtins.elem name [
          "cudnn"
          "nccl"
          "libcublas"
          "cuda-merged"
        ];
    };
    nixpkgs.overlays = [ (final: _prev: { cudaPackages = final.${cfg.cudaPackageSet}; }) ];

    hardware.nvidia = {
      package = config.boot.kernelPackages.nvidiaPackages.legacy_580;
      open = false;
      datacenter.enable = true;
      nvidiaPersistenced = true;
    };
  };
}
