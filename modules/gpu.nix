# GPU: the Tesla P4 (Pascal, compute capability 6.1). The 580 branch is the last that
# supports Pascal, and only with the proprietary kernel module (the open modules need
# Turing+). CUDA 13 dropped sm_6x, so the system's CUDA package set is pinned to a 12.x
# release by an overlay, and cudaCapabilities = [ "6.1" ] makes CUDA-enabled packages
# (llama-cpp-python's override in services/) build for sm_61.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.emily.gpu;
  cuda = import ./lib/cuda.nix;
  cudaVersion = pkgs.cudaPackages.cudaMajorMinorVersion or pkgs.cudaPackages.cudaVersion;
  unsupported = cuda.unsupported cudaVersion cfg.cudaCapabilities;
  datacenter = lib.hasPrefix "dc_" cfg.driver;
in
{
  options.emily.gpu = {
    enable = lib.mkEnableOption "the NVIDIA P4 with the 580 driver branch and CUDA 12";

    driver = lib.mkOption {
      type = lib.types.enum [
        "legacy_580"
        "dc_580"
      ];
      default = "legacy_580";
      description = ''
        The driver from `boot.kernelPackages.nvidiaPackages`: `legacy_580`, the 580 LTSB
        branch (Pascal supported until about 2028), or `dc_580`, the datacenter build of
        the same branch (it also ships fabricmanager and needs
        `nixpkgs.config.nvidia.acceptLicense`, which this module then sets).
      '';
    };

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
        assertion = unsupported == [ ];
        message = "emily.gpu: CUDA ${cudaVersion} (${cfg.cudaPackageSet}) cannot build for compute capability ${toString unsupported} (the P4 is Pascal, 6.1); choose a cudaPackages_12_* set.";
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
          "cuda-merged"
        ];
    }
    # the datacenter drivers ask for their license to be accepted explicitly
    // lib.optionalAttrs datacenter { nvidia.acceptLicense = true; };
    nixpkgs.overlays = [ (final: _prev: { cudaPackages = final.${cfg.cudaPackageSet}; }) ];

    hardware.nvidia = {
      package = config.boot.kernelPackages.nvidiaPackages.${cfg.driver};
      open = false;
      # The datacenter path of nixpkgs' nvidia module installs the package's
      # fabricmanager, which only the dc_* builds have (legacy_580's is `{ }`, not a
      # package). The others take the videoDrivers path below; the module asserts
      # that the two are not combined.
      datacenter.enable = datacenter;
      nvidiaPersistenced = true;
      # headless: no GTK settings tool, no VA-API video decoding
      nvidiaSettings = false;
      videoAcceleration = false;
    };
    # Selects the driver without enabling X (services.xserver.enable stays off).
    services.xserver.videoDrivers = lib.mkIf (!datacenter) [ "nvidia" ];
    # /run/opengl-driver/lib, where CUDA programs (addDriverRunpath) find libcuda.so
    hardware.graphics.enable = true;
    # NVLink fabric management is for NVSwitch systems; a PCIe P4 has none, and the
    # service fails to start without it.
    systemd.services.nvidia-fabricmanager.enable = lib.mkIf datacenter (lib.mkForce false);
  };
}
