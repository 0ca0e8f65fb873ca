# Hardware facts of the c220g5 (2x Xeon Silver 4114, HDDs behind the onboard SATA/SAS
# controller, two NVMe drives, a Tesla P4). File systems come from ./disko.nix.
{ modulesPath, ... }:

{
  imports = [ (modulesPath + "/installer/scan/not-detected.nix") ];

  boot.initrd.availableKernelModules = [
    "xhci_pci"
    "ahci"
    "nvme"
    "megaraid_sas"
    "usbhid"
    "sd_mod"
  ];
  boot.kernelModules = [ "kvm-intel" ];

  # EFI GRUB, installed as the removable fallback loader on each ESP
  # (mirroredBoots in ./disko.nix); ZFS root needs GRUB's ZFS support.
  boot.loader.grub = {
    enable = true;
    efiSupport = true;
    efiInstallAsRemovable = true;
    zfsSupport = true;
  };

  hardware.cpu.intel.updateMicrocode = true;
  nixpkgs.hostPlatform = "x86_64-linux";
}
