# emily.node: the facts every Emily module shares.
{ config, lib, ... }:

let
  cfg = config.emily;
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
      type = lib.types.path;
      default = "/var/lib/emily";
      description = "Parent of the Emily services' state directories (a ZFS dataset on the host).";
    };
  };

  config = {
    assertions = [
      {
        assertion = lib.hasPrefix "/" (toString cfg.stateDir);
        message = "emily.stateDir must be an absolute path.";
      }
    ];
  };
}
