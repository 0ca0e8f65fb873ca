# zenohd: the Zenoh router the Emily services connect to as clients (nixpkgs module
# services.zenohd). It listens on localhost and on the services VLAN only (the firewall
# opens its port there: modules/network/firewall.nix); multicast scouting is off.
{ config, lib, ... }:

let
  cfg = config.emily.zenohd;
  net = config.emily.network;
in
{
  options.emily.zenohd = {
    enable = lib.mkEnableOption "the zenohd router for the Emily services";

    port = lib.mkOption {
      type = lib.types.port;
      default = 7447;
      description = "TCP port of the router (the services' BusConfig connect endpoint).";
    };

    listenAddresses = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "127.0.0.1" ] ++ lib.optional net.enable "${net.vlans.services.prefix}.1";
      defaultText = lib.literalMD "`127.0.0.1` and the host's address on the services VLAN";
      description = "Addresses zenohd listens on.";
    };
  };

  config = lib.mkIf cfg.enable {
    services.zenohd = {
      enable = true;
      # the module reads these two without defaults
      backends = [ ];
      extraOptions = [ ];
      settings = {
        mode = "router";
        listen.endpoints = map (a: "tcp/${a}:${toString cfg.port}") cfg.listenAddresses;
        scouting.multicast.enabled = false;
      };
    };
  };
}
