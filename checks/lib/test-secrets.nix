# A NixOS module for VM tests: sops-nix decrypting secrets/test.yaml with the committed
# TEST-ONLY age key (./test-age-key.nix puts it in /run before sops-nix runs).
sopsModule:
{ ... }:

{
  imports = [
    sopsModule
    ./test-age-key.nix
  ];

  emily.secrets = {
    enable = true;
    sopsFile = ../../secrets/test.yaml;
    ageKeyFile = "/run/age-keys.txt";
  };
}
