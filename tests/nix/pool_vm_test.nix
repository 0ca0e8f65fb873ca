# checks/lib/pool-vm.nix, the VM of the pool tests (checks/zfs.nix, checks/backup.nix):
# its device nodes name its empty disks, and ./pool.nix builds the pool on them.
let
  vm = import ../../checks/lib/pool-vm.nix;
  inherit (vm.module) virtualisation;
  nodes = vm.hdds ++ vm.nvmes;
  letters = [
    "b"
    "c"
    "d"
    "e"
    "f"
    "g"
    "h"
    "i"
  ];
  named = builtins.genList (i: "/dev/vd${builtins.elemAt letters i}") (builtins.length nodes);
  pool = import ../../checks/lib/pool.nix { inherit (vm) hdds nvmes; };
  has = needle: builtins.match ".*${needle}.*" pool != null;
in
[
  {
    name = "one empty disk per device node, named from /dev/vdb in order";
    expr = {
      disks = builtins.length virtualisation.emptyDiskImages;
      inherit nodes;
    };
    expected = {
      disks = builtins.length nodes;
      nodes = named;
    };
  }
  {
    name = "four data disks for raidz2, two smaller ones for the special mirror";
    expr = {
      data = builtins.length vm.hdds;
      special = builtins.length vm.nvmes;
      sizes = virtualisation.emptyDiskImages;
    };
    expected = {
      data = 4;
      special = 2;
      sizes = [
        512
        512
        512
        512
        256
        256
      ];
    };
  }
  {
    name = "emily.storage's RAM is the VM's memory (the ARC limits follow from it)";
    expr = vm.module.emily.storage.ramGiB * 1024;
    expected = virtualisation.memorySize;
  }
  {
    name = "the pool is built on those disks";
    expr = [
      (has "raidz2 /dev/vdb /dev/vdc /dev/vdd /dev/vde")
      (has "special mirror /dev/vdf /dev/vdg")
    ];
    expected = [
      true
      true
    ];
  }
]
