# The VM of the tests that build the `ember` pool (checks/zfs.nix, checks/backup.nix):
# four empty disks for the raidz2 data vdev and two smaller ones for the mirrored special
# vdev, their device nodes (`hdds`, `nvmes`, for ./pool.nix) and `module`, which gives the
# VM those disks, the memory ZFS needs and emily.storage on them. The VM's own disk is
# /dev/vda, so the empty ones are /dev/vdb onward in the order of hdds ++ nvmes.
rec {
  hdds = [
    "/dev/vdb"
    "/dev/vdc"
    "/dev/vdd"
    "/dev/vde"
  ];
  nvmes = [
    "/dev/vdf"
    "/dev/vdg"
  ];

  module = {
    virtualisation = {
      memorySize = 2048;
      # MiB each
      emptyDiskImages = map (_: 512) hdds ++ map (_: 256) nvmes;
    };
    emily.storage = {
      enable = true;
      hostId = "deadbeef";
      ramGiB = 2;
    };
  };
}
