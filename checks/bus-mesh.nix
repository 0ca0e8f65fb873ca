# VM test of the two-host layout: `cloudlab` runs cognition, `store` runs memory and
# inference; each has its zenohd, and the two routers mesh over WireGuard with mutual TLS
# (certificates from secrets/test.yaml, TEST-ONLY key). An observation on cloudlab is
# answered with store's memory and language model; with the tunnel cut by nftables
# cognition sees the services' liveliness tokens go, answers from the reflex and names
# what is missing; with the tunnel back the next deliberation succeeds.
{ pkgs, sops-nix }:

let
  testSecrets = import ./lib/test-secrets.nix sops-nix.nixosModules.sops;
  # public halves of the test-only WireGuard keys in secrets/test.yaml
  cloudlabPub = "AcyLgCZElhMB8s5Ud+0nxIfeadnxfav5UbvhoX24/Sk=";
  storePub = "GpVVnGExb+18l8k15v5ljBcR3KZvLcajGAcpg9d+jGo=";
  common = {
    imports = [
      ../modules
      testSecrets
    ];
    virtualisation.memorySize = 4096;
    virtualisation.cores = 2;
    emily.network = {
      enable = true;
      uplink = "eth1";
    };
    emily.zenohd.enable = true;
    services.openssh.enable = true;
    environment.systemPackages = [
      pkgs.nftables
      pkgs.curl
      pkgs.netcat-openbsd
    ];
  };
in
pkgs.testers.runNixOSTest {
  name = "emily-bus-mesh";

  nodes.cloudlab = {
    imports = [ common ];
    emily.network.wireguard.peers = [
      {
        publicKey = storePub;
        allowedIPs = [ "10.99.0.2/32" ];
        endpoint = "store:51820";
        persistentKeepalive = 5;
      }
    ];
    emily.zenohd.mesh.peers = [ "10.99.0.2" ];
    services.emily.cognition = {
      enable = true;
      memoryNode = "store";
      inferenceNode = "store";
      settings.deliberate_timeout_s = 120;
    };
  };

  nodes.store =
    { config, lib, ... }:
    {
      imports = [ common ];
      # the second host: its own VLANs, the peer key of secrets/test.yaml
      emily.network = {
        vlans = {
          mgmt = {
            id = 11;
            prefix = "10.11.0";
            domain = "mgmt.store.internal";
          };
          services = {
            id = 21;
            prefix = "10.21.0";
            domain = "svc.store.internal";
          };
          storage = {
            id = 31;
            prefix = "10.31.0";
            domain = "storage.store.internal";
          };
        };
        wireguard = {
          address = "10.99.0.2/24";
          privateKeyFile = lib.mkForce config.sops.secrets."wireguard/peer-private-key".path;
          peers = [
            {
              publicKey = cloudlabPub;
              allowedIPs = [ "10.99.0.1/32" ];
              endpoint = "cloudlab:51820";
              persistentKeepalive = 5;
            }
          ];
        };
      };
      sops.secrets."wireguard/peer-private-key".restartUnits = [ "wireguard-wg0.service" ];
      emily.zenohd.mesh.peers = [ "10.99.0.1" ];
      emily.database = {
        enable = true;
        ramGiB = 4;
      };
      services.emily.memory.enable = true;
      services.emily.inference = {
        enable = true;
        contextLength = 1024;
        settings.max_tokens = 16;
      };
    };

  testScript = ''
    import json

    def observe(text):
        body = json.dumps({"text": text, "max_tokens": 16})
        out = cloudlab.succeed(
            f"curl -sf -H 'Content-Type: application/json' -d '{body}' http://127.0.0.1:8462/v1/observe"
        )
        return json.loads(out)

    def deliberated(_last_try):
        # retry() does not catch: a refused or failed request is a "not yet"
        try:
            reply = observe("Why is the sky blue?")
        except Exception:
            return False
        trace = reply["trace"]
        return trace["tier"] == "deliberation" and trace["missing"] == [] and reply["response"] != ""

    def degraded(_last_try):
        try:
            missing = observe("what did the plumber say on Monday")["trace"]["missing"]
        except Exception:
            return False
        return "memory" in missing and "inference" in missing

    start_all()
    for node in (cloudlab, store):
        node.wait_for_unit("wireguard-wg0.service")
        node.wait_for_unit("zenohd.service")
    store.wait_for_unit("emily-memory.service")
    store.wait_for_unit("emily-inference.service")
    cloudlab.wait_for_unit("emily-cognition.service")
    cloudlab.wait_for_open_port(8462)

    with subtest("the tunnel and the router mesh are up, on TLS only"):
        cloudlab.wait_until_succeeds("ping -c1 -W1 10.99.0.2", timeout=60)
        cloudlab.succeed("ss -ltn | grep -q '10.99.0.1:7447'")
        # zenohd's port is open on wg0 and the services VLAN, not on the uplink
        store.succeed("nc -z -w 3 10.99.0.1 7447")
        store.fail("nc -z -w 3 cloudlab 7447")

    with subtest("an observation on cloudlab is answered with store's memory and model"):
        retry(deliberated, timeout_seconds=300)

    with subtest("the tunnel cut: cognition degrades by liveliness, the reflex answers"):
        cloudlab.succeed(
            "nft add table inet cut && "
            "nft add chain inet cut in '{ type filter hook input priority -10; }' && "
            "nft add chain inet cut out '{ type filter hook output priority -10; }' && "
            "nft add rule inet cut in iifname wg0 drop && "
            "nft add rule inet cut out oifname wg0 drop"
        )
        retry(degraded, timeout_seconds=120)
        reply = observe("hello")
        assert reply["trace"]["tier"] == "reflex", reply

    with subtest("the tunnel restored: the next deliberation succeeds"):
        cloudlab.succeed("nft delete table inet cut")
        retry(deliberated, timeout_seconds=300)
  '';
}
