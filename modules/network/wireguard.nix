# WireGuard `wg0` (MTU 1420: 1500 minus the IPv6+UDP+WireGuard overhead of 80 bytes).
# The private key is a file (sops: modules/secrets.nix sets it); peers are an option.
{ config, lib, ... }:

let
  cfg = config.emily.network.wireguard;
  peerType = lib.types.submodule {
    options = {
      publicKey = lib.mkOption {
        type = lib.types.str;
        description = "The peer's base64 public key (`wg pubkey`).";
      };
      allowedIPs = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        example = [ "10.99.0.2/32" ];
        description = "Addresses routed to this peer through the tunnel.";
      };
      endpoint = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "laptop.example.org:51820";
        description = "Where to reach the peer; null for peers that dial in.";
      };
      persistentKeepalive = lib.mkOption {
        type = lib.types.nullOr lib.types.ints.positive;
        default = null;
        description = "Keepalive interval in seconds (for peers behind NAT).";
      };
    };
  };
in
{
  options.emily.network.wireguard = {
    address = lib.mkOption {
      type = lib.types.str;
      default = "10.99.0.1/24";
      description = "The host's address in the tunnel network.";
    };
    listenPort = lib.mkOption {
      type = lib.types.port;
      default = 51820;
      description = "UDP port WireGuard listens on (opened on the uplink).";
    };
    privateKeyFile = lib.mkOption {
      type = lib.types.str;
      description = "File holding the host's private key; set from sops by modules/secrets.nix.";
    };
    peers = lib.mkOption {
      type = lib.types.listOf peerType;
      default = [ ];
      description = "WireGuard peers (admins' laptops, other sites).";
    };
  };

  config = lib.mkIf config.emily.network.enable {
    networking.wireguard.interfaces.wg0 = {
      ips = [ cfg.address ];
      inherit (cfg) listenPort privateKeyFile;
      mtu = 1420;
      peers = map (p: {
        inherit (p)
          publicKey
          allowedIPs
          endpoint
          persistentKeepalive
          ;
      }) cfg.peers;
    };
  };
}
