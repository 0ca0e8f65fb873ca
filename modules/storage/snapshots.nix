# Snapshots with sanoid: names are `autosnap_<UTC timestamp>_<period>`, prefixed and
# sortable by construction; sanoid prunes them by its own bookkeeping (no date parsing
# of ours). Retention: 48 hourly, 30 daily, 12 monthly.
{ config, lib, ... }:

let
  cfg = config.emily.storage;
  layout = import ./layout.nix;
  # backup-staging holds derived copies (pg_dump), not worth snapshotting
  snapshotted = lib.filterAttrs (n: _: n != "backup-staging") layout.datasets;
in
{
  config = lib.mkIf cfg.enable {
    services.sanoid = {
      enable = true;
      interval = "hourly";
      templates.emily = {
        hourly = 48;
        daily = 30;
        monthly = 12;
        yearly = 0;
        autosnap = true;
        autoprune = true;
      };
      datasets = lib.mapAttrs' (
        name: _: lib.nameValuePair "${layout.pool}/${name}" { useTemplate = [ "emily" ]; }
      ) snapshotted;
    };
  };
}
