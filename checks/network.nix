# VM test of modules/network: the host and a laptop joined by WireGuard (keys from
# secrets/test.yaml via sops-nix and the TEST-ONLY key), the sysctls applied, a client
# on the services VLAN getting a DHCP lease and DNS answer, and the firewall scoping
# Zenoh to the services VLAN and SSH to WireGuard, management and the uplink.
{ pkgs, sops-nix }:

let
  testSecrets = import ./lib/test-secrets.nix sops-nix.nixosModules.sops;
  # public halves of the test-only WireGuard keys in secrets/test.yaml
  hostPub = "AcyLgCZElhMB8s5Ud+0nxIfeadnxfav5UbvhoX24/Sk=";
  laptopPub = "GpVVnGExb+18l8k15v5ljBcR3KZvLcajGAcpg9d+jGo=";
  bdp = import ../modules/lib/bdp.nix;
in
pkgs.testers.runNixOSTest {
  name = "emily-network";

  nodes.cloudlab = {
    imports = [
      ../modules
      testSecrets
    ];
    emily.network = {
      enable = true;
      uplink = "eth1";
      wireguard.peers = [
        {
          publicKey = laptopPub;
          allowedIPs = [ "10.99.0.2/32" ];
        }
      ];
    };
    emily.zenohd.enable = true;
    services.openssh.enable = true;
  };

  nodes.laptop =
    { config, ... }:
    {
      imports = [
        sops-nix.nixosModules.sops
        ./lib/test-age-key.nix
      ];
      sops = {
        defaultSopsFile = ../secrets/test.yaml;
        secrets."wireguard/peer-private-key" = { };
      };
      networking.wireguard.interfaces.wg0 = {
        ips = [ "10.99.0.2/24" ];
        privateKeyFile = config.sops.secrets."wireguard/peer-private-key".path;
        mtu = 1420;
        peers = [
          {
            publicKey = hostPub;
            allowedIPs = [ "10.99.0.1/32" ];
            endpoint = "cloudlab:51820";
            persistentKeepalive = 5;
          }
        ];
      };
      # a client on the services VLAN
      networking.vlans.vlan20 = {
        id = 20;
        interface = "eth1";
      };
      networking.interfaces.vlan20.useDHCP = true;
      environment.systemPackages = [
        pkgs.netcat-openbsd
        pkgs.dig
      ];
    };

  testScript = ''
    start_all()
    cloudlab.wait_for_unit("wireguard-wg0.service")
    cloudlab.wait_for_unit("kea-dhcp4-server.service")
    cloudlab.wait_for_unit("unbound.service")
    cloudlab.wait_for_unit("zenohd.service")
    laptop.wait_for_unit("wireguard-wg0.service")

    with subtest("BBR, fq and BDP-sized socket buffers"):
        assert cloudlab.succeed("sysctl -n net.ipv4.tcp_congestion_control").strip() == "bbr"
        assert cloudlab.succeed("sysctl -n net.core.default_qdisc").strip() == "fq"
        assert cloudlab.succeed("sysctl -n net.core.rmem_max").strip() == "${toString (bdp.bufferBytes 1000 100)}"
        assert cloudlab.succeed("sysctl -n net.ipv4.conf.all.forwarding").strip() == "1"

    with subtest("WireGuard tunnel with MTU 1420"):
        laptop.wait_until_succeeds("ping -c1 -W1 10.99.0.1", timeout=60)
        assert "mtu 1420" in cloudlab.succeed("ip link show wg0")
        cloudlab.succeed("wg show wg0 peers | grep -qF '${laptopPub}'")

    with subtest("the services VLAN: DHCP lease, DNS, Zenoh open, SSH closed"):
        laptop.wait_until_succeeds("ip -4 addr show vlan20 | grep -q 'inet 10.20.0.1[0-9][0-9]/24'", timeout=90)
        answer = laptop.succeed("dig +short @10.20.0.1 cloudlab.svc.emily.internal").strip()
        assert answer == "10.20.0.1", answer
        laptop.succeed("nc -z -w 3 10.20.0.1 7447")
        laptop.fail("nc -z -w 3 10.20.0.1 22")

    with subtest("SSH over WireGuard"):
        laptop.succeed("nc -z -w 3 10.99.0.1 22")

    with subtest("SSH also on the uplink (no lock-out), Zenoh not"):
        laptop.succeed("nc -z -w 3 cloudlab 22")
        laptop.fail("nc -z -w 3 cloudlab 7447")
  '';
}
