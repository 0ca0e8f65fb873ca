# A NixOS module for VM tests: sops-nix decrypting secrets/test.yaml with the committed
# TEST-ONLY age key (copied to /run before sops-nix runs, as sops-nix's own tests do).
sopsModule:
{ ... }:

{
  imports = [ sopsModule ];

  emily.secrets = {
    enable = true;
    sopsFile = ../../secrets/test.yaml;
    ageKeyFile = "/run/age-keys.txt";
  };

  boot.initrd.postDeviceCommands = ''
    cp ${../../secrets/test-only-age-key.txt} /run/age-keys.txt
    chmod 0600 /run/age-keys.txt
  '';
}
