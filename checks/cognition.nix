# VM test of modules/services/cognition.nix: zenohd, emily-memory, emily-inference (CPU,
# Gemma 3 270M) and emily-cognition. It checks the unit's ordering after memory and
# inference, answers a reflex observation over the bus with the CLI and a deliberation
# over HTTP behind the bearer token, rejects a bad observation, reads /metrics (the
# reflex SLO histogram) and checks the hardening. Then it stops memory and inference
# and shows the cycle degrading: the reflex still answers and the trace names what is
# missing.
# `pkgs` carries the emily overlay (runNixOSTest hands it to the node as node.pkgs).
{ pkgs }:

pkgs.testers.runNixOSTest {
  name = "emily-cognition";

  nodes.machine = {
    imports = [ ../modules ];
    virtualisation.memorySize = 4096;
    virtualisation.cores = 2;
    emily.zenohd.enable = true;
    services.emily.memory = {
      enable = true;
      node = "vmtest";
    };
    services.emily.inference = {
      enable = true;
      node = "vmtest";
      contextLength = 1024;
      settings.max_tokens = 16;
    };
    services.emily.cognition = {
      enable = true;
      node = "vmtest";
      # a test-only token in the store; on the host it is the sops secret `apiKeySecret`
      apiKeyFile = "/etc/emily-test/token";
    };
    environment.etc."emily-test/token".text = "vm-test-token";
    environment.systemPackages = [
      pkgs.emily
      pkgs.curl
    ];
  };

  testScript = ''
    import json

    client = "EMILY_BUS__NODE=vmtest EMILY_BUS__MODE=client EMILY_BUS__CONNECT='[\"tcp/127.0.0.1:7447\"]'"
    auth = "-H 'Authorization: Bearer vm-test-token'"

    machine.wait_for_unit("zenohd.service")
    machine.wait_for_unit("emily-cognition.service")
    machine.wait_for_open_port(8462)

    with subtest("the unit orders after memory and inference"):
        after = machine.succeed("systemctl show emily-cognition -p After")
        assert "emily-memory.service" in after and "emily-inference.service" in after, after

    with subtest("the reflex answers over Zenoh"):
        out = json.loads(machine.succeed(f"{client} emily observe --json --wait 120 hello"))
        assert out["trace"]["tier"] == "reflex", out

    with subtest("a deliberation uses the language model, over HTTP behind the token"):
        machine.wait_for_unit("emily-inference.service")
        machine.wait_for_unit("emily-memory.service")
        body = json.dumps({"text": "Why is the sky blue?", "max_tokens": 16})
        post = f"-H 'Content-Type: application/json' -d '{body}' http://127.0.0.1:8462/v1/observe"
        code = machine.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' {post}")
        assert code == "401", code
        reply = json.loads(machine.succeed(f"curl -sf {auth} {post}"))
        assert reply["response"], reply
        code = machine.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' {auth} -H 'Content-Type: application/json' "
            "-d '{\"text\": \"\"}' http://127.0.0.1:8462/v1/observe"
        )
        assert code == "400", code

    with subtest("metrics"):
        metrics = machine.succeed("curl -sf http://127.0.0.1:8462/metrics")
        for name in ['emily_cognition_stage_seconds_bucket{le="0.001",stage="reflex"}',
                     "emily_cognition_tier_total", "emily_cognition_policy_expected_free_energy"]:
            assert name in metrics, name

    with subtest("degradation: memory and inference stopped, the reflex still answers"):
        machine.succeed("systemctl stop emily-memory emily-inference")
        out = json.loads(machine.succeed(f"{client} emily observe --json thanks"))
        assert out["trace"]["tier"] == "reflex", out
        out = json.loads(machine.succeed(f"{client} emily observe --json 'what did the plumber say'"))
        assert "memory" in out["trace"]["missing"], out

    with subtest("hardening"):
        show = machine.succeed(
            "systemctl show emily-cognition -p ProtectSystem -p NoNewPrivileges -p User "
            "-p PrivateDevices -p StateDirectory"
        )
        for want in ["ProtectSystem=strict", "NoNewPrivileges=yes", "User=emily-cognition",
                     "PrivateDevices=yes", "StateDirectory=emily/cognition"]:
            assert want in show, show
  '';
}
