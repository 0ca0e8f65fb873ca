# zenohd: the Zenoh router the Emily services connect to as clients (nixpkgs module
# services.zenohd). Its configuration is the data file ./zenohd.json5 (mutual TLS,
# access control per service); this module only sets the endpoints and the certificate
# paths (modules/lib/zenohd-config.nix). It listens on localhost and on the services
# VLAN; with mesh peers also on its WireGuard address, and dials the other routers there
# (the firewall opens its port on those interfaces only: modules/network/firewall.nix).
# Without `tls.enable` (VM tests of a single service) it is a plain router on localhost
# only, with no access control: nothing outside the host can reach it.
{ config, lib, ... }:

let
  cfg = config.emily.zenohd;
  net = config.emily.network;
  zenohdConfig = import ../lib/zenohd-config.nix;
  wgAddress = builtins.head (lib.splitString "/" net.wireguard.address);
  scheme = if cfg.tls.enable then "tls" else "tcp";
  endpoint = address: "${scheme}/${address}:${toString cfg.port}";
  listen = map endpoint (cfg.listenAddresses ++ lib.optional (cfg.mesh.peers != [ ]) wgAddress);
  connect = map endpoint cfg.mesh.peers;
  # units that create the addresses zenohd binds
  onServicesVlan = net.enable && builtins.elem "${net.vlans.services.prefix}.1" cfg.listenAddresses;
  addressUnits =
    lib.optional onServicesVlan net.addressUnits.services
    ++ lib.optional (cfg.mesh.peers != [ ]) "wireguard-wg0.service";
  certificates = cfg.tls.rootCa != null && cfg.tls.certificate != null && cfg.tls.privateKey != null;
  loopbackOnly = cfg.mesh.peers == [ ] && cfg.listenAddresses == [ "127.0.0.1" ];
  file = lib.types.nullOr lib.types.str;
in
{
  options.emily.zenohd = {
    enable = lib.mkEnableOption "the zenohd router for the Emily services";

    port = lib.mkOption {
      type = lib.types.port;
      default = 7447;
      description = "Port of the router (the services' `router` endpoint, the mesh links).";
    };

    listenAddresses = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "127.0.0.1"
      ]
      ++ lib.optional (net.enable && cfg.tls.enable) "${net.vlans.services.prefix}.1";
      defaultText = lib.literalMD "`127.0.0.1`, and with TLS the host's address on the services VLAN";
      description = "Addresses zenohd listens on (the WireGuard address is added for the mesh).";
    };

    tls = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = config.emily.secrets.enable;
        defaultText = lib.literalExpression "config.emily.secrets.enable";
        description = ''
          Every link mutually authenticated TLS, with the access control of zenohd.json5.
          The certificates come from sops (hosts/cloudlab/bus-certs.sh makes them).
        '';
      };
      rootCa = lib.mkOption {
        type = file;
        default = null;
        description = "PEM file of the bus CA (set from sops by modules/secrets.nix).";
      };
      certificate = lib.mkOption {
        type = file;
        default = null;
        description = "PEM certificate of this router (CN=router, the node's addresses as SANs).";
      };
      privateKey = lib.mkOption {
        type = file;
        default = null;
        description = "PEM private key of the router's certificate.";
      };
    };

    mesh.peers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "10.99.0.2" ];
      description = ''
        WireGuard addresses of the other hosts' routers. Non-empty: zenohd also listens
        on this host's WireGuard address and dials each peer there (TLS only).
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !cfg.tls.enable || certificates;
        message = "emily.zenohd.tls needs rootCa, certificate and privateKey (modules/secrets.nix sets them from sops).";
      }
      {
        assertion = cfg.tls.enable || loopbackOnly;
        message = "emily.zenohd: without tls.enable zenohd may listen on 127.0.0.1 only and join no mesh.";
      }
      {
        assertion = cfg.mesh.peers == [ ] || net.enable;
        message = "emily.zenohd.mesh needs emily.network (the mesh runs over wg0).";
      }
    ];

    services.zenohd = {
      enable = true;
      # the module reads these two without defaults
      backends = [ ];
      extraOptions = [ ];
      settings =
        if cfg.tls.enable then
          zenohdConfig.settings {
            inherit listen connect;
            inherit (cfg.tls) rootCa certificate privateKey;
          }
        else
          {
            mode = "router";
            listen.endpoints = listen;
            scouting.multicast.enabled = false;
          };
    };

    systemd.services.zenohd = {
      after = addressUnits;
      wants = addressUnits;
      serviceConfig = {
        Restart = "on-failure";
        RestartSec = 5;
      };
    };
  };
}
