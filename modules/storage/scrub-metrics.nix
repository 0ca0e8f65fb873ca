# Scrub results for Prometheus (textfile collector): after each zfs-scrub run, write
# emily_zfs_scrub_last_completed_timestamp_seconds and emily_zfs_scrub_errors per pool.
# Alerts: modules/monitoring/rules/zfs.yml.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.emily.storage;
  layout = import ./layout.nix;
  textfileDir = config.emily.monitoring.textfileDir;
in
{
  config = lib.mkIf cfg.enable {
    systemd.services.emily-zfs-scrub-metrics = {
      description = "Export the last ZFS scrub's result to the node exporter";
      path = [
        config.boot.zfs.package
        pkgs.coreutils
      ];
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${pkgs.bash}/bin/bash ${./scrub-metrics.sh} ${textfileDir} ${layout.pool}";
      };
    };
    # nixpkgs' zfs-scrub is Type=simple around `zpool scrub -w`, so After=/WantedBy= on it
    # start this as soon as the scrub unit starts, racing the scrub itself (`zpool wait`
    # may find no scrub yet and record the previous one). Run it once the scrub's
    # process has exited instead (successfully or not).
    systemd.services.zfs-scrub.serviceConfig.ExecStopPost =
      "${config.systemd.package}/bin/systemctl start --no-block emily-zfs-scrub-metrics.service";
    # the first value exists before the first scrub, so a missing scrub is alerted on
    systemd.tmpfiles.rules = [ "d ${textfileDir} 0755 root root -" ];
  };
}
