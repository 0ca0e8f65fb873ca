# emily.node and emily.stateDir: the facts every Emily module shares.
{ config, lib, ... }:

let
  cfg = config.emily;
  layout = import ./storage/layout.nix;
  dataset = layout.datasets.emily.mountpoint;
  onPool = !(config.emily.storage.enable or false) || cfg.stateDir == dataset;
in
{
  options.emily = {
    node = lib.mkOption {
      type = lib.types.strMatching "[A-Za-z0-9_.-]+";
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "Node name: the services' Zenoh keys live under `emily/<node>/`.";
    };

    stateDir = lib.mkOption {
      type = lib.types.strMatching "/var/lib/[A-Za-z0-9_.-]+";
      default = "/var/lib/emily";
      description = ''
        Parent of the Emily services' state directories (`<stateDir>/<service>`, systemd
        StateDirectory=, so under /var/lib). With emily.storage it is the mountpoint of
        the pool's `emily` dataset.
      '';
    };
  };

  config = {
    assertions = [
      {
        assertion = onPool;
        message = "emily.stateDir (${cfg.stateDir}) must be the mountpoint of the `emily` dataset (${dataset}, modules/storage/layout.nix).";
      }
    ];
  };
}
