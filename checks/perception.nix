# VM test of modules/services/perception.nix: zenohd (modules/services/zenohd.nix) and
# the emily-perception unit with the embedded Whisper tiny.en and Tesseract. It speaks a
# sentence with espeak-ng inside the VM, transcribes it over the bus with the CLI, reads
# a bad file as a clear error, and checks /metrics and the hardening.
# `pkgs` carries the emily overlay (runNixOSTest hands it to the node as node.pkgs).
{ pkgs }:

pkgs.testers.runNixOSTest {
  name = "emily-perception";

  nodes.machine = {
    imports = [ ../modules ];
    virtualisation.memorySize = 3072;
    virtualisation.cores = 2;
    emily.zenohd.enable = true;
    services.emily.perception = {
      enable = true;
      node = "vmtest";
    };
    environment.systemPackages = [
      pkgs.emily
      pkgs.espeak-ng
    ];
  };

  testScript = ''
    import json

    client = "EMILY_BUS__NODE=vmtest EMILY_BUS__MODE=client EMILY_BUS__CONNECT='[\"tcp/127.0.0.1:7447\"]'"

    machine.wait_for_unit("zenohd.service")
    machine.wait_for_unit("emily-perception.service")
    machine.wait_for_open_port(9463)

    with subtest("a spoken sentence is transcribed over the bus"):
        machine.succeed("espeak-ng -v en-us -s 140 -g 8 -w /tmp/kite.wav 'The red kite nested in the old oak by the river.'")
        reply = json.loads(machine.succeed(f"{client} emily perceive --wait 60 --json --audio /tmp/kite.wav"))
        assert "kite" in reply["text"].lower() and "river" in reply["text"].lower(), reply
        assert reply["model"] == "whisper-tiny.en" and reply["language"] == "en", reply
        assert reply["segments"] and 2 < reply["duration_s"] < 6, reply

    with subtest("a file that is not audio is a clear error"):
        out = machine.fail(f"{client} emily perceive --audio /etc/hostname 2>&1")
        assert "audio" in out, out

    with subtest("metrics"):
        metrics = machine.succeed("curl -sf http://127.0.0.1:9463/metrics")
        assert 'emily_perception_requests_total{op="transcribe",outcome="ok"}' in metrics, metrics
        assert 'outcome="bad_request"' in metrics, metrics

    with subtest("hardening"):
        show = machine.succeed("systemctl show emily-perception -p ProtectSystem -p NoNewPrivileges -p User -p PrivateDevices")
        for want in ["ProtectSystem=strict", "NoNewPrivileges=yes", "User=emily-perception", "PrivateDevices=yes"]:
            assert want in show, show
  '';
}
