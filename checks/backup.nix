# VM test of modules/backup.nix: a pool on virtual disks, a pg_dump and ZFS snapshots
# before restic backs up to a local repository, snapshots released afterwards, the
# result exported as metrics, an injected failure (Postgres stopped) recorded as such,
# then the restore drill restores into a scratch dataset, verifies and reports RTO.
{ pkgs, sops-nix }:

let
  testSecrets = import ./lib/test-secrets.nix sops-nix.nixosModules.sops;
  layout = import ../modules/storage/layout.nix;
  vm = import ./lib/pool-vm.nix;
  createPool = import ./lib/pool.nix {
    inherit (vm) hdds nvmes;
    mountRoot = "";
    only = [
      "emily"
      "backup-staging"
    ];
  };
  prom = "/var/lib/prometheus-node-exporter-text/emily_backup_ember.prom";
in
pkgs.testers.runNixOSTest {
  name = "emily-backup";

  nodes.machine = {
    imports = [
      ../modules
      testSecrets
      vm.module
    ];
    emily.database = {
      enable = true;
      ramGiB = 2;
    };
    emily.backup = {
      enable = true;
      repository = "/var/lib/restic-repo";
      datasets = [
        "emily"
        "backup-staging"
      ];
    };
    environment.systemPackages = [ pkgs.restic ];
  };

  testScript = ''
    machine.wait_for_unit("postgresql.service")
    machine.succeed("""${createPool}""")
    machine.succeed("systemd-tmpfiles --create")
    machine.succeed("echo 'the durable truth' > /var/lib/emily/episode.txt")
    machine.succeed("sudo -u postgres psql -d emily -c 'create table t as select generate_series(1, 1000) i'")

    with subtest("a backup: pg_dump, snapshots, restic, snapshots released, metrics"):
        machine.succeed("systemctl start restic-backups-ember.service")
        assert "restic-ember" not in machine.succeed("zfs list -H -t snapshot -o name")
        prom = machine.succeed("cat ${prom}")
        assert 'emily_backup_last_run_success{backup="ember"} 1' in prom, prom
        assert "emily_backup_last_success_timestamp_seconds" in prom, prom
        env = "RESTIC_REPOSITORY=/var/lib/restic-repo RESTIC_PASSWORD_FILE=/run/secrets/restic/password"
        files = machine.succeed(f"{env} restic ls latest")
        assert "/var/lib/emily/.zfs/snapshot/restic-ember/episode.txt" in files, files
        assert "emily.dump" in files, files

    with subtest("an injected failure (Postgres stopped, pg_dump fails) is recorded"):
        machine.succeed("systemctl stop postgresql.service")
        machine.fail("systemctl start restic-backups-ember.service")
        prom = machine.succeed("cat ${prom}")
        assert 'emily_backup_last_run_success{backup="ember"} 0' in prom, prom
        assert "emily_backup_last_success_timestamp_seconds" in prom, prom
        assert "restic-ember" not in machine.succeed("zfs list -H -t snapshot -o name")

    with subtest("the restore drill restores into a scratch dataset, verifies, reports RTO"):
        out = machine.succeed("emily-restore-drill")
        assert out.startswith("restore-drill ok") and "rto_seconds=" in out, out
        drill = machine.succeed("cat /var/lib/prometheus-node-exporter-text/emily_restore_drill_ember.prom")
        assert 'emily_backup_restore_drill_success{backup="ember"} 1' in drill, drill
        assert "${layout.pool}/restore-drill" not in machine.succeed("zfs list -H -o name")
  '';
}
