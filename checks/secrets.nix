# VM test of modules/secrets.nix: sops-nix decrypts secrets/test.yaml with the TEST-ONLY
# age key; secrets land with the right owners and content; a template renders without
# placeholders; the Postgres role's password from sops works over TCP (scram).
{ pkgs, sops-nix }:

let
  testSecrets = import ./lib/test-secrets.nix sops-nix.nixosModules.sops;
  # public half of wireguard/private-key in secrets/test.yaml
  hostPub = "AcyLgCZElhMB8s5Ud+0nxIfeadnxfav5UbvhoX24/Sk=";
in
pkgs.testers.runNixOSTest {
  name = "emily-secrets";

  nodes.machine = {
    imports = [
      ../modules
      testSecrets
    ];
    emily.database = {
      enable = true;
      ramGiB = 2;
      localhostTcp = true;
    };
    emily.monitoring.enable = true;
    sops.secrets."wireguard/private-key" = { };
    environment.systemPackages = [ pkgs.wireguard-tools ];
  };

  testScript = ''
    machine.wait_for_unit("multi-user.target")

    with subtest("decrypted with the test key, content intact"):
        pub = machine.succeed("wg pubkey < /run/secrets/wireguard/private-key").strip()
        assert pub == "${hostPub}", pub

    with subtest("owners and modes"):
        assert machine.succeed("stat -c %U:%a /run/secrets/postgres/emily-password").strip() == "postgres:400"
        assert machine.succeed("stat -c %U /run/secrets/grafana/admin-password").strip() == "grafana"

    with subtest("templates render the secrets, not placeholders"):
        env = machine.succeed("cat /run/secrets/rendered/alertmanager.env")
        assert "SMTP_AUTH_PASSWORD=" in env and "<SOPS:" not in env, env

    with subtest("the Postgres role's password comes from sops (scram over TCP)"):
        machine.wait_for_unit("emily-postgres-passwords.service")
        machine.succeed("PGPASSWORD=$(cat /run/secrets/postgres/emily-password) psql -h 127.0.0.1 -U emily -d emily -c 'select 1'")
        machine.fail("PGPASSWORD=wrong psql -h 127.0.0.1 -U emily -d emily -c 'select 1'")
        assert machine.succeed("sudo -u postgres psql -tAc 'show password_encryption'").strip() == "scram-sha-256"
  '';
}
