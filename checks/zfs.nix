# VM test of modules/storage: the `ember` pool on virtual disks (raidz2 + mirrored
# special vdev), dataset properties from layout.nix, small blocks landing on the special
# vdev, ARC limits from the RAM option, hostId, scrub with its metrics, sanoid snapshots.
{ pkgs }:

let
  layout = import ../modules/storage/layout.nix;
  arc = import ../modules/lib/arc.nix;
  vm = import ./lib/pool-vm.nix;
  createPool = import ./lib/pool.nix { inherit (vm) hdds nvmes; };
  props = builtins.toJSON (builtins.mapAttrs (_: d: d.options) layout.datasets);
in
pkgs.testers.runNixOSTest {
  name = "emily-zfs";

  nodes.machine = {
    imports = [
      ../modules
      vm.module
    ];
    environment.systemPackages = [ pkgs.sanoid ];
  };

  testScript = ''
    import json

    machine.wait_for_unit("multi-user.target")

    with subtest("hostId and ARC limits from emily.storage.ramGiB"):
        assert machine.succeed("hostid").strip() == "deadbeef"
        arc_max = int(machine.succeed("cat /sys/module/zfs/parameters/zfs_arc_max"))
        arc_min = int(machine.succeed("cat /sys/module/zfs/parameters/zfs_arc_min"))
        assert arc_max == ${toString (arc.limits 2).maxBytes}, arc_max
        assert arc_min == ${toString (arc.limits 2).minBytes}, arc_min

    with subtest("the pool: raidz2 data vdev and a mirrored special vdev"):
        machine.succeed("""${createPool}""")
        status = machine.succeed("zpool status ${layout.pool}")
        assert "raidz2-0" in status and "special" in status and "mirror-1" in status, status

    with subtest("dataset properties match layout.nix"):
        want = json.loads('${props}')
        for name, options in want.items():
            for prop, value in options.items():
                got = machine.succeed(f"zfs get -H -o value {prop} ${layout.pool}/{name}").strip()
                assert got == value, f"{name} {prop}: {got} != {value}"
            assert machine.succeed(f"zfs get -H -o value compression ${layout.pool}/{name}").strip() == "zstd"

    with subtest("small blocks land on the special vdev"):
        machine.succeed("for i in $(seq 1 400); do head -c 6000 /dev/urandom > /ember/nix/f$i; done; sync")
        machine.succeed("zpool sync ${layout.pool}")
        rows = machine.succeed("zpool list -v -H -p ${layout.pool}").splitlines()
        special = [r for r in rows if r.strip().startswith("mirror-1")]
        assert special and int(special[0].split()[2]) > 2 * 1024 * 1024, rows

    with subtest("scrub, and its result exported for Prometheus"):
        machine.succeed("zpool scrub -w ${layout.pool}")
        machine.succeed("zpool status ${layout.pool} | grep -q 'scrub repaired 0B.* with 0 errors'")
        machine.succeed("systemctl start emily-zfs-scrub-metrics.service")
        prom = machine.succeed("cat /var/lib/prometheus-node-exporter-text/emily_zfs_scrub.prom")
        assert 'emily_zfs_scrub_errors{pool="${layout.pool}"} 0' in prom, prom
        assert "emily_zfs_scrub_last_completed_timestamp_seconds" in prom, prom
        machine.succeed("systemctl list-timers --all | grep -q zfs-scrub")
        machine.succeed("systemctl list-timers --all | grep -q zpool-trim")

    with subtest("sanoid takes prefixed, sortable snapshots"):
        machine.succeed("systemctl start sanoid.service")
        snaps = machine.succeed("zfs list -H -t snapshot -o name ${layout.pool}/nix").split()
        assert any("@autosnap_" in s and s.endswith("_hourly") for s in snaps), snaps
        assert not machine.succeed("zfs list -H -t snapshot -o name ${layout.pool}/backup-staging").strip()
  '';
}
