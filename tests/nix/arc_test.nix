let
  arc = import ../../modules/lib/arc.nix;
  gib = 1024 * 1024 * 1024;
in
[
  {
    name = "128 GiB RAM gives ARC max 100 GiB and min 8 GiB";
    expr = arc.limits 128;
    expected = {
      maxBytes = 100 * gib;
      minBytes = 8 * gib;
    };
  }
  {
    name = "64 GiB RAM scales linearly";
    expr = arc.limits 64;
    expected = {
      maxBytes = 50 * gib;
      minBytes = 4 * gib;
    };
  }
  {
    name = "a 4 GiB VM: 3200 MiB max, 256 MiB min";
    expr = arc.limits 4;
    expected = {
      maxBytes = 3200 * 1024 * 1024;
      minBytes = 256 * 1024 * 1024;
    };
  }
  {
    name = "kernel parameters carry the byte counts";
    expr = arc.kernelParams 128;
    expected = [
      "zfs.zfs_arc_max=107374182400"
      "zfs.zfs_arc_min=8589934592"
    ];
  }
  {
    name = "zero RAM is rejected";
    expr = (builtins.tryEval (arc.limits 0)).success;
    expected = false;
  }
]
