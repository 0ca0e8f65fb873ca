# emily.storage: the facts of the pool that the host fills in (disk IDs, layout).
{ config, lib, ... }:

let
  cfg = config.emily.storage;
  byId = lib.types.strMatching "/dev/disk/by-id/.+";
in
{
  options.emily.storage = {
    enable = lib.mkEnableOption "the ZFS pool `ember` and its operation";

    hostId = lib.mkOption {
      type = lib.types.strMatching "[0-9a-f]{8}";
      example = "8425e349";
      description = ''
        `networking.hostId` (8 hex digits), which ZFS records in the pool to refuse
        imports by another host. Generate once: `head -c4 /dev/urandom | od -A none -t x4`.
      '';
    };

    hdds = lib.mkOption {
      type = lib.types.listOf byId;
      default = [ ];
      example = [ "/dev/disk/by-id/ata-ST1200MM0009_WFK0XXXX" ];
      description = ''
        The HDDs of the raidz2 data vdev (at least 4), by stable ID. Read them on the
        machine with `ls -l /dev/disk/by-id/ | grep -v part` and keep the `ata-`/`scsi-`/
        `wwn-` names that point at the HDDs (`lsblk -d -o NAME,ROTA,SIZE,MODEL`: ROTA=1).
      '';
    };

    nvmes = lib.mkOption {
      type = lib.types.listOf byId;
      default = [ ];
      example = [ "/dev/disk/by-id/nvme-Dell_Express_Flash_PM1725a_XXXX" ];
      description = ''
        The two NVMe drives, by stable ID (`nvme-...` names). Each gets a 1 GiB ESP
        (GRUB installs to both: boot.loader.grub.mirroredBoots) and a partition of the
        mirrored special vdev.
      '';
    };

    dataLayout = lib.mkOption {
      type = lib.types.enum [
        "raidz2"
        "draid2"
      ];
      default = "raidz2";
      description = ''
        Layout of the HDD data vdev.

        - `raidz2`: survives any two disk failures; a resilver rewrites one disk, so it
          takes hours to days on large HDDs. Any vdev width; the usual choice below ~12
          disks, and what disko can create.
        - `draid2`: the same parity with distributed spare space, so a rebuild reads and
          writes across every disk and finishes several times faster. It pays with a
          fixed stripe width (small blocks are padded to it; bad for a 16K-record
          Postgres dataset without the special vdev) and shines from ~20 disks up. The
          c220g5 has too few HDDs for it to pay off, and disko cannot create dRAID, so
          choosing it asserts with the `zpool create` command to run by hand.
      '';
    };

    ramGiB = lib.mkOption {
      type = lib.types.ints.positive;
      default = 128;
      description = "Installed RAM in GiB; the ARC limits are computed from it (modules/lib/arc.nix).";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = builtins.length cfg.hdds >= 4 || cfg.hdds == [ ];
        message = "emily.storage.hdds: raidz2 needs at least 4 disks, got ${toString (builtins.length cfg.hdds)}.";
      }
      {
        assertion = builtins.length cfg.nvmes == 2 || cfg.nvmes == [ ];
        message = "emily.storage.nvmes: the special vdev and the ESPs are mirrored over exactly 2 NVMe drives.";
      }
    ];
  };
}
