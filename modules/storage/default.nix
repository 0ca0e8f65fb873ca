# Storage: the ZFS pool `ember` (raidz2 HDDs + mirrored NVMe special vdev), its
# operation (ARC, scrub, trim), snapshots and scrub metrics. The disk layout itself is
# host data: hosts/cloudlab/disko.nix builds it from these options and ./layout.nix.
{
  imports = [
    ./pool.nix
    ./zfs.nix
    ./snapshots.nix
    ./scrub-metrics.nix
  ];
}
