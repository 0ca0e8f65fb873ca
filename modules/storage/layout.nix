# The `ember` pool's datasets as pure data (builtins only): read by
# hosts/cloudlab/disko.nix to create them, by checks/zfs.nix to build the same pool on
# virtual disks, and by tests/host/test_storage_layout.py to check the rules below.
#
# Rules: compression zstd everywhere; recordsize fits the workload (16K Postgres pages,
# 128K Prometheus chunks); special_small_blocks routes blocks up to that size to the
# mirrored NVMe special vdev. It must be > 0 (0 sends only metadata there, which defeats
# a special vdev for small files such as /nix's) and < recordsize (equal would send
# every block of the dataset to NVMe and fill the special vdev).
{
  pool = "ember";

  # zpool create -o ...
  poolOptions = {
    ashift = "12";
    autotrim = "on";
  };

  # properties of the pool's root dataset, inherited by every dataset below
  rootFsOptions = {
    compression = "zstd";
    atime = "off";
    xattr = "sa";
    acltype = "posixacl";
    dnodesize = "auto";
    mountpoint = "none";
    canmount = "off";
  };

  datasets = {
    root = {
      mountpoint = "/";
      options = {
        recordsize = "128K";
        special_small_blocks = "16K";
      };
    };
    nix = {
      mountpoint = "/nix";
      options = {
        recordsize = "128K";
        special_small_blocks = "16K";
      };
    };
    var = {
      mountpoint = "/var";
      options = {
        recordsize = "128K";
        special_small_blocks = "16K";
      };
    };
    # 16K records match Postgres' 8K pages in pairs without read-modify-write; 8K small
    # blocks put compressed pages (and the visibility/free-space maps) on NVMe.
    postgres = {
      mountpoint = "/var/lib/postgresql";
      options = {
        recordsize = "16K";
        special_small_blocks = "8K";
        logbias = "latency";
      };
    };
    monitoring = {
      mountpoint = "/var/lib/prometheus2";
      options = {
        recordsize = "128K";
        special_small_blocks = "16K";
      };
    };
    # pg_dump output and other files restic reads from a snapshot
    backup-staging = {
      mountpoint = "/var/backup-staging";
      options = {
        recordsize = "1M";
        special_small_blocks = "16K";
      };
    };
    # the Emily services' state (emily.stateDir)
    emily = {
      mountpoint = "/var/lib/emily";
      options = {
        recordsize = "128K";
        special_small_blocks = "16K";
      };
    };
  };
}
