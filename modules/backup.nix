# Backups: restic to an S3-compatible repository, read from a ZFS snapshot taken just
# before (after a pg_dump into backup-staging), pruned by policy, with the result
# exported to Prometheus (textfile collector; alerts in monitoring/rules/backup.yml).
# A restore drill (backup/restore-drill.sh) restores into a scratch dataset, verifies
# the data and reports the recovery time.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.emily.backup;
  layout = import ./storage/layout.nix;
  snapName = "restic-${cfg.name}";
  datasetPath = ds: "${layout.pool}/${ds}";
  snapshotDir =
    ds:
    let
      mp = layout.datasets.${ds}.mountpoint;
    in
    "${if mp == "/" then "" else mp}/.zfs/snapshot/${snapName}";
  zfs = "${config.boot.zfs.package}/bin/zfs";
  textfileDir = config.emily.monitoring.textfileDir;
  pg = config.services.postgresql;
in
{
  options.emily.backup = {
    enable = lib.mkEnableOption "restic backups of ZFS snapshots to an S3-compatible repository";

    name = lib.mkOption {
      type = lib.types.strMatching "[a-z0-9-]+";
      default = "ember";
      description = "Name of the backup job (unit restic-backups-<name>, metric label `backup`).";
    };

    repository = lib.mkOption {
      type = lib.types.str;
      example = "s3:http://10.30.0.10:9000/emily-backup";
      description = ''
        The restic repository. Either MinIO on the storage VLAN
        (`s3:http://10.30.0.10:9000/<bucket>`) or an offsite bucket
        (`s3:https://<endpoint>/<bucket>`); a local path works too (the VM test uses one).
      '';
    };

    datasets = lib.mkOption {
      type = lib.types.listOf (lib.types.enum (builtins.attrNames layout.datasets));
      default = [
        "emily"
        "var"
        "postgres"
        "backup-staging"
      ];
      description = "Datasets of the pool to back up, each from its snapshot `@restic-<name>`.";
    };

    passwordFile = lib.mkOption {
      type = lib.types.str;
      description = "File with the repository password (sops: modules/secrets.nix).";
    };

    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "Environment file with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for S3 (sops template).";
    };

    pruneOpts = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "--keep-daily 7"
        "--keep-weekly 5"
        "--keep-monthly 12"
        "--keep-yearly 3"
      ];
      description = "Retention for `restic forget --prune`, run after each backup.";
    };

    timerConfig = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = {
        OnCalendar = "02:30";
        RandomizedDelaySec = "30m";
        Persistent = "true";
      };
      description = "When the backup runs (daily; the BackupTooOld alert fires after 26 h).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.restic.backups.${cfg.name} = {
      inherit (cfg)
        repository
        passwordFile
        environmentFile
        pruneOpts
        timerConfig
        ;
      initialize = true;
      paths = map snapshotDir cfg.datasets;
      backupPrepareCommand = ''
        set -euo pipefail
        ${lib.optionalString pg.enable ''
          ${pkgs.util-linux}/bin/runuser -u postgres -- \
            ${lib.getExe' pg.finalPackage "pg_dump"} -Fc -f ${
              layout.datasets.backup-staging.mountpoint
            }/${config.emily.database.name}.dump.tmp ${config.emily.database.name}
          mv ${layout.datasets.backup-staging.mountpoint}/${config.emily.database.name}.dump{.tmp,}
        ''}
        for ds in ${lib.escapeShellArgs (map datasetPath cfg.datasets)}; do
          ${zfs} destroy "$ds@${snapName}" 2>/dev/null || true
          ${zfs} snapshot "$ds@${snapName}"
        done
      '';
      # runs as ExecStopPost, after success or failure: release the snapshots, record the result
      backupCleanupCommand = ''
        for ds in ${lib.escapeShellArgs (map datasetPath cfg.datasets)}; do
          ${zfs} destroy "$ds@${snapName}" || true
        done
        ${pkgs.bash}/bin/bash ${./backup/metrics.sh} ${textfileDir} ${cfg.name} "''${SERVICE_RESULT:-unknown}"
      '';
    };

    systemd.tmpfiles.rules = [
      "d ${layout.datasets.backup-staging.mountpoint} 0750 postgres root -"
      "d ${textfileDir} 0755 root root -"
    ];

    environment.systemPackages = [
      (pkgs.writeShellApplication {
        name = "emily-restore-drill";
        runtimeInputs = [
          pkgs.restic
          pkgs.coreutils
          pkgs.findutils
          config.boot.zfs.package
        ];
        text = ''
          export RESTIC_REPOSITORY=${lib.escapeShellArg cfg.repository}
          export RESTIC_PASSWORD_FILE=${lib.escapeShellArg cfg.passwordFile}
          ${lib.optionalString (cfg.environmentFile != null) ''
            set -a
            # shellcheck disable=SC1091
            . ${lib.escapeShellArg cfg.environmentFile}
            set +a
          ''}
          exec bash ${./backup/restore-drill.sh} --scratch-dataset ${layout.pool}/restore-drill \
            --textfile-dir ${textfileDir} --backup ${cfg.name} "$@"
        '';
      })
    ];
  };
}
