# The c220g5's disks, declared for disko (docs/host.md "First install").
#
# - Each NVMe drive: a 1 GiB ESP (mounted at /boot and /boot-fallback; GRUB installs to
#   both through boot.loader.grub.mirroredBoots) and a partition of the special vdev.
# - Pool `ember`: one raidz2 vdev over the HDDs plus a mirrored special vdev over the
#   two NVMe partitions, which holds all metadata and every block up to each dataset's
#   special_small_blocks.
# - Datasets and their properties come from modules/storage/layout.nix.
#
# Disk IDs are options (emily.storage.hdds / nvmes), set in ./default.nix.
{ config, lib, ... }:

let
  cfg = config.emily.storage;
  layout = import ../../modules/storage/layout.nix;
  pool = layout.pool;

  hdd = i: id: {
    name = "hdd${toString i}";
    value = {
      type = "disk";
      device = id;
      content = {
        type = "gpt";
        partitions.zfs = {
          size = "100%";
          content = {
            type = "zfs";
            inherit pool;
          };
        };
      };
    };
  };

  nvme = i: id: {
    name = "nvme${toString i}";
    value = {
      type = "disk";
      device = id;
      content = {
        type = "gpt";
        partitions = {
          ESP = {
            size = "1G";
            type = "EF00";
            content = {
              type = "filesystem";
              format = "vfat";
              mountpoint = if i == 0 then "/boot" else "/boot-fallback";
              mountOptions = [ "umask=0077" ];
            };
          };
          # the special-vdev partition; disko names a pool member by its disk and
          # expects that disk's pool partition to be called `zfs`
          zfs = {
            size = "100%";
            content = {
              type = "zfs";
              inherit pool;
            };
          };
        };
      };
    };
  };

  indexed = f: list: lib.imap0 f list;
in
{
  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.dataLayout == "raidz2";
        message = ''
          emily.storage.dataLayout = "draid2" cannot be created by disko (it has no dRAID
          mode). Create the pool by hand, then import it:
            zpool create -o ashift=12 ember draid2:2d:1s:<n>c <hdds...> special mirror <nvme-part2...>
        '';
      }
    ];

    disko.devices = {
      disk = builtins.listToAttrs (indexed hdd cfg.hdds ++ indexed nvme cfg.nvmes);
      zpool.${pool} = {
        type = "zpool";
        options = layout.poolOptions;
        inherit (layout) rootFsOptions;
        mode.topology = {
          type = "topology";
          vdev = [
            {
              mode = "raidz2";
              members = lib.imap0 (i: _: "hdd${toString i}") cfg.hdds;
            }
          ];
          special = [
            {
              mode = "mirror";
              members = lib.imap0 (i: _: "nvme${toString i}") cfg.nvmes;
            }
          ];
        };
        datasets = lib.mapAttrs (_: d: {
          type = "zfs_fs";
          inherit (d) mountpoint;
          options = d.options // {
            mountpoint = "legacy";
          };
        }) layout.datasets;
      };
    };

    # GRUB on both ESPs, so either NVMe drive can boot alone.
    boot.loader.grub.mirroredBoots = [
      {
        devices = [ "nodev" ];
        path = "/boot";
      }
      {
        devices = [ "nodev" ];
        path = "/boot-fallback";
      }
    ];
  };
}
