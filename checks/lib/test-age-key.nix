# A NixOS module for VM tests: the committed TEST-ONLY age key at /run/age-keys.txt
# before sops-nix decrypts anything. With systemd in stage 1 (the NixOS default)
# initrd shell hooks are gone, so secrets are installed by sops-nix's systemd unit and
# the key is written in that unit's preStart, as sops-nix's own systemd-initrd tests do.
{ ... }:

{
  sops.age.keyFile = "/run/age-keys.txt";
  sops.useSystemdActivation = true;
  systemd.services.sops-install-secrets.preStart = ''
    install -m 0600 ${../../secrets/test-only-age-key.txt} /run/age-keys.txt
  '';
}
