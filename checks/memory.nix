# VM test of modules/services/memory.nix: Postgres with pgvector (modules/database.nix),
# zenohd (modules/services/zenohd.nix) and the emily-memory unit. It stores episodes
# over the bus with the CLI, recalls them, checks /metrics and the hardening, and proves
# that episodes and tier files survive a restart of the unit.
# `pkgs` carries the emily overlay (runNixOSTest hands it to the node as node.pkgs).
{ pkgs }:

pkgs.testers.runNixOSTest {
  name = "emily-memory";

  nodes.machine = {
    imports = [ ../modules ];
    virtualisation.memorySize = 4096;
    virtualisation.cores = 2;
    emily.database = {
      enable = true;
      ramGiB = 4;
    };
    emily.zenohd.enable = true;
    services.emily.memory = {
      enable = true;
      node = "vmtest";
      settings = {
        l0_capacity = 64;
        l1_capacity = 256;
        l2_capacity = 1024;
      };
    };
    environment.systemPackages = [ pkgs.emily ];
    environment.etc."emily-test/episodes.jsonl".text = ''
      {"text": "The heating in the lab broke on Monday", "source": "vmtest"}
      {"text": "Alice presented the tiered memory design", "source": "vmtest"}
      {"text": "We ordered new NVMe drives for the server", "source": "vmtest"}
    '';
  };

  testScript = ''
    import json

    client = "EMILY_BUS__NODE=vmtest EMILY_BUS__MODE=client EMILY_BUS__CONNECT='[\"tcp/127.0.0.1:7447\"]'"

    machine.wait_for_unit("postgresql.service")
    machine.wait_for_unit("zenohd.service")
    machine.wait_for_unit("emily-memory.service")
    machine.wait_for_open_port(9461)

    with subtest("store and recall over the bus"):
        machine.succeed(f"{client} emily memory --wait 60 ingest --quiet /etc/emily-test/episodes.jsonl")
        out = machine.succeed(f"{client} emily memory recall 'who showed the memory design?' -k 1")
        assert "Alice" in out, out
        stats = json.loads(machine.succeed(f"{client} emily memory stats --json"))
        assert stats["episodes"] == 3, stats

    with subtest("episodes live in the NixOS Postgres, reached over the unix socket"):
        n = machine.succeed("sudo -u emily psql -tA -d emily -c 'select count(*) from episodes'").strip()
        assert n == "3", n
        machine.succeed("sudo -u emily psql -tA -d emily -c 'select version from emily_schema_migrations' | grep -qx 1")

    with subtest("metrics"):
        metrics = machine.succeed("curl -sf http://127.0.0.1:9461/metrics")
        for name in ["emily_memory_hits_total", "emily_memory_misses_total", "emily_memory_pool_size"]:
            assert name in metrics, name

    with subtest("hardening"):
        show = machine.succeed("systemctl show emily-memory -p ProtectSystem -p NoNewPrivileges -p User -p StateDirectory")
        for want in ["ProtectSystem=strict", "NoNewPrivileges=yes", "User=emily", "StateDirectory=emily/memory"]:
            assert want in show, show

    with subtest("a restart keeps episodes, tier files and statistics"):
        machine.succeed(f"{client} emily memory recall 'new drives' -k 1")
        machine.systemctl("restart emily-memory.service")
        machine.wait_for_unit("emily-memory.service")
        machine.wait_for_open_port(9461)
        machine.succeed("test -s /var/lib/emily/memory/memory/l2/vectors.f32")
        machine.succeed("test -s /var/lib/emily/memory/memory/access.json")
        out = machine.succeed(f"{client} emily memory --wait 60 recall 'new drives' -k 1")
        assert "NVMe" in out and " L" in out, out
  '';
}
