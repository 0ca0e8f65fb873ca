# ZFS ARC limits from the machine's RAM: a pure helper (builtins only), so that
# `nix-instantiate --eval` tests it without nixpkgs (tests/nix/arc_test.nix).
#
# The ARC may grow to 25/32 of RAM (100 GiB of 128 GiB), which leaves 28 GiB for
# Postgres' shared_buffers (16 GiB), the services and the kernel; it never shrinks
# below 1/16 of RAM (8 GiB of 128 GiB), so metadata of the special vdev stays cached.
let
  mib = 1024 * 1024;
in
rec {
  # ramGiB: installed RAM in GiB (an integer >= 1).
  # Returns { maxBytes; minBytes; } in bytes, rounded down to whole MiB.
  limits =
    ramGiB:
    if !(builtins.isInt ramGiB) || ramGiB < 1 then
      throw "arc.limits: ramGiB must be a positive integer (GiB of RAM), got ${builtins.toJSON ramGiB}"
    else
      let
        ramMiB = ramGiB * 1024;
      in
      {
        maxBytes = ramMiB * 25 / 32 * mib;
        minBytes = ramMiB / 16 * mib;
      };

  # The kernel parameters that apply `limits` (zfs module parameters).
  kernelParams =
    ramGiB:
    let
      l = limits ramGiB;
    in
    [
      "zfs.zfs_arc_max=${toString l.maxBytes}"
      "zfs.zfs_arc_min=${toString l.minBytes}"
    ];
}
