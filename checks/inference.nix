# VM test of modules/services/inference.nix on the CPU with the small model (Gemma 3
# 270M from pkgs.emily-gemma3-270m): zenohd plus the emily-inference unit. It asks over
# the bus with the CLI and over the OpenAI HTTP API with and without the bearer token,
# reads /healthz (backend cpu) and /metrics, and checks the unit's hardening.
# `pkgs` carries the emily overlay (runNixOSTest hands it to the node as node.pkgs).
{ pkgs }:

pkgs.testers.runNixOSTest {
  name = "emily-inference";

  nodes.machine = {
    imports = [ ../modules ];
    virtualisation.memorySize = 3072;
    virtualisation.cores = 2;
    emily.zenohd.enable = true;
    services.emily.inference = {
      enable = true;
      node = "vmtest";
      contextLength = 1024;
      # a test-only token in the store; on the host it is the sops secret `apiKeySecret`
      apiKeyFile = "/etc/emily-test/token";
      settings = {
        max_tokens = 16;
        queue_size = 2;
      };
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
    machine.wait_for_unit("emily-inference.service")
    machine.wait_for_open_port(8461)

    with subtest("the backend really in use is reported"):
        health = json.loads(machine.succeed("curl -sf http://127.0.0.1:8461/healthz"))
        assert health["backend"] == "cpu" and health["model"] == "gemma-3-270m-q4_k_m", health
        machine.succeed("journalctl -u emily-inference | grep -q 'inference backend: cpu'")

    with subtest("the model answers over Zenoh"):
        out = machine.succeed(f"{client} emily infer 'The capital of France is' --max-tokens 8 -v 2>&1")
        assert "tokens; ttft" in out, out

    with subtest("the model answers over HTTP, behind the token"):
        machine.fail("curl -sf http://127.0.0.1:8461/v1/models")
        models = json.loads(machine.succeed(f"curl -sf {auth} http://127.0.0.1:8461/v1/models"))
        assert models["data"][0]["id"] == "gemma-3-270m-q4_k_m", models
        body = json.dumps({"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8})
        reply = json.loads(machine.succeed(
            f"curl -sf {auth} -H 'Content-Type: application/json' -d '{body}' "
            "http://127.0.0.1:8461/v1/chat/completions"
        ))
        assert reply["usage"]["completion_tokens"] >= 1, reply
        code = machine.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' {auth} -H 'Content-Type: application/json' "
            "-d '{\"prompt\": \"x\", \"temperature\": 9}' http://127.0.0.1:8461/v1/completions"
        )
        assert code == "400", code

    with subtest("metrics"):
        metrics = machine.succeed("curl -sf http://127.0.0.1:8461/metrics")
        for name in ["emily_inference_ttft_seconds_bucket", "emily_inference_generated_tokens_total",
                     "emily_inference_queue_depth", 'emily_inference_backend_info{backend="cpu"']:
            assert name in metrics, name

    with subtest("hardening: no devices on the CPU path"):
        show = machine.succeed(
            "systemctl show emily-inference -p ProtectSystem -p NoNewPrivileges -p User "
            "-p PrivateDevices -p DevicePolicy -p StateDirectory"
        )
        for want in ["ProtectSystem=strict", "NoNewPrivileges=yes", "User=emily-inference",
                     "PrivateDevices=yes", "DevicePolicy=closed", "StateDirectory=emily/inference"]:
            assert want in show, show
  '';
}
